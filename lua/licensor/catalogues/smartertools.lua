-- smartertools.lua -- the catalogue of the three SmarterTools products:
-- SmarterMail, SmarterTrack and SmarterStats, with their editions, levels,
-- add-ons, prices and build history.
--
-- Build numbers count days since 2000-01-01: a build's number is the day it
-- was released (SmarterTrack 6911 <-> 2018-12-03).  Up to late 2018 builds
-- carried a product version (SmarterMail 14.7.6347, the last 14.x); from
-- the build-number era on the version is 100.0.NNNN.  Prices are in US
-- cents, per major version, edition and level (mailboxes, agents, sites).
--
-- Every SmarterTrack build lists its downloads, one file per platform in
-- the artifact directory (licensor gateway --artifacts DIR): demo bytes
-- that licensor.demo.write_artifacts(DIR) writes, whose sha256 and size
-- are the literals below (licensor artifacts check DIR compares them).
--
-- This file runs in licensor's catalogue sandbox: plain Lua, no os or io;
-- day() and date() are the sandbox's calendar helpers.

local floor = math.floor
local BUILD_EPOCH = day("2000-01-01")

-- The calendar date of a build number (days since 2000-01-01).
local function released(number)
  return date(BUILD_EPOCH + number)
end

-- Versioned builds: { "14.7", 6347 } -> 14.7.6347.
local function versioned(list, builds)
  for _, entry in ipairs(list) do
    local number = entry[2]
    builds[#builds + 1] = { number = number, version = entry[1] .. "." .. number,
                            released = released(number), no_rollback = entry.no_rollback }
  end
  return builds
end

-- Build-number era: 100.0.NNNN.  The first one moved to a new back end and
-- cannot be rolled back from (its release note says so).
local function build_era(numbers, builds)
  for i, number in ipairs(numbers) do
    builds[#builds + 1] = { number = number, version = "100.0." .. number,
                            released = released(number), no_rollback = i == 1 or nil }
  end
  return builds
end

local function prices_for(majors, table_of)
  local prices = {}
  for i, major in ipairs(majors) do prices[major] = table_of(i) end
  return prices
end

-- Each major version is priced 5% above the one before; prices end in 99.
local function step(base, i)
  return floor(base * (19 + i) / 20) - 100
end

local smartermail_builds = versioned({
  { "14.0", 6100 }, { "14.0", 6131 }, { "14.1", 6172 }, { "14.2", 6201 }, { "14.3", 6235 },
  { "14.4", 6268 }, { "14.5", 6290 }, { "14.6", 6318 }, { "14.7", 6347 },
  { "15.0", 6380 }, { "15.1", 6415 }, { "15.2", 6449 }, { "15.3", 6478 }, { "15.5", 6520 },
  { "15.7", 6561 },
  { "16.0", 6590 }, { "16.1", 6633 }, { "16.2", 6681 }, { "16.3", 6730 }, { "16.3", 6798 },
}, {})
build_era({
    6837, 6875, 6900, 6921, 6954, 6995, 7037, 7074, 7104, 7128, 7162, 7200,
    7238, 7266, 7294, 7316, 7338, 7386, 7409, 7443, 7484, 7521, 7543, 7578,
    7623, 7664, 7704, 7749, 7770, 7793, 7837, 7863, 7891, 7918, 7952, 7994,
    8033, 8073, 8104, 8144, 8171, 8207, 8238, 8273, 8303, 8333, 8355, 8394,
    8427, 8453, 8481, 8513, 8544, 8592, 8632, 8681, 8724, 8759, 8790, 8819,
    8842, 8871, 8912, 8939, 8987, 9011, 9035, 9060, 9097, 9139, 9180, 9217,
    9245, 9266, 9298, 9324, 9345, 9392, 9438, 9483, 9529, 9570, 9611, 9654,
    9676, 9718, 9766,
}, smartermail_builds)

local smartertrack_builds = versioned({
  { "12.0", 6075 }, { "12.1", 6140 }, { "12.2", 6203 }, { "12.3", 6266 }, { "12.4", 6311 },
  { "13.0", 6402 }, { "13.1", 6470 }, { "13.2", 6533 }, { "13.3", 6620 }, { "13.4", 6712 },
  { "13.5", 6802 }, { "13.5", 6855 },
}, {})
build_era({
    6911, 6947, 6989, 7022, 7054, 7077, 7120, 7154, 7185, 7220, 7259, 7286,
    7314, 7343, 7364, 7386, 7434, 7457, 7485, 7515, 7564, 7613, 7651, 7693,
    7732, 7764, 7811, 7834, 7883, 7913, 7942, 7968, 8016, 8054, 8095, 8121,
    8150, 8174, 8218, 8246, 8289, 8316, 8357, 8389, 8417, 8448, 8470, 8503,
    8549, 8572, 8616, 8664, 8686, 8732, 8766, 8813, 8844, 8869, 8902, 8938,
    8969, 8999, 9034, 9083, 9113, 9159, 9180, 9216, 9255, 9302, 9336, 9372,
    9398, 9440, 9476, 9516, 9561, 9590, 9616, 9665, 9689, 9720, 9749, 9787,
}, smartertrack_builds)

-- The demo files of SmarterTrack's builds: "number platform" -> sha256, size.
local SMARTERTRACK_PLATFORMS = { "windows-x64", "linux-x64" }
local SMARTERTRACK_FILES = {
  ["6075 windows-x64"] = { "b46a54f56f45bf7addc0a99009f91349828c7daba695daf5b6e25cc1f5540773", 4464 },
  ["6075 linux-x64"] = { "e5b3e9629d5172fa626b2cd679b13dfb650fd97381aa790e2848c0e9751df269", 4368 },
  ["6140 windows-x64"] = { "2ae624774d7bdf141a3bed4d3818ba22226903913c3c392ea1b9c84ac9abef58", 4464 },
  ["6140 linux-x64"] = { "c6af6f409a1724f153e91f6446f5982061fa1cf39faa5fe051f42de9deb122fa", 4368 },
  ["6203 windows-x64"] = { "3d76b8faec49516e26178dc43f66e17766592001bfcb53dc7bf99d35016a544b", 4464 },
  ["6203 linux-x64"] = { "fd4cc72d13615473269831cc8959cebc5ac52c02a330f8784c61c9f4812e6c50", 4368 },
  ["6266 windows-x64"] = { "83ba152cd1690fc15136d1c719124efc655cf235b223bdc61f8168b94916fbdb", 4464 },
  ["6266 linux-x64"] = { "898c9989d79aff202f724a9cdc702f694e240262a60ce7df225075f44089cf86", 4368 },
  ["6311 windows-x64"] = { "248d6e6b40b458b0f2dfc89c8945a2fe253b8aa7854e66d8d2f45a7d423dd6f1", 4464 },
  ["6311 linux-x64"] = { "e1a4a44beb9756e9982820eedf297eb631eb9904cad3645b5cef6b65e3a15f49", 4368 },
  ["6402 windows-x64"] = { "fa5bd49b36cbea1848f65cfcb76d670657b5096e8ab0ef01fb1a991df9e289a0", 4464 },
  ["6402 linux-x64"] = { "0a8361cc62136152674a591152395da1fea889eaef47e589e7c47038a747422f", 4368 },
  ["6470 windows-x64"] = { "c7280a95a7842dabaa8a91a25edf1fbd3cf8b9dde627a71ebfd59e9608166e88", 4464 },
  ["6470 linux-x64"] = { "0c59d7ecb9ae28141f8b718ac37ec682bdebbdbc49f157c621a2907b4493a5d4", 4368 },
  ["6533 windows-x64"] = { "c03aa43daa66918b8c31b5359d42e1840a0ecdc1d7291821dee6a6f146c8be86", 4464 },
  ["6533 linux-x64"] = { "cd3474c430ba84ced967347179d16ae780567626583232234b6da3cf8681b225", 4368 },
  ["6620 windows-x64"] = { "9bf4c7f344d0c0d14e563194ab15a722824f5bf3377acaba2491aae189c755b5", 4464 },
  ["6620 linux-x64"] = { "552be3be2b5107029a827e754fa2128119f944e5f3b2ec29e6435eb749821011", 4368 },
  ["6712 windows-x64"] = { "fc2aa75d65e817744a867bbbf82f3b1d3db1b5f59adde6f5ea38f63a24ae3c59", 4464 },
  ["6712 linux-x64"] = { "52139a12549a363214f59e5608f9f8bd0f60f62cb6bd257ec481b6972f78fbe0", 4368 },
  ["6802 windows-x64"] = { "f6e24658cabb8de8b9bc9200982b20c7dbdc4c8ef285342c1822ee7ab361b64d", 4464 },
  ["6802 linux-x64"] = { "58e37badc451accc8d0cf33d549cfc8798989ebd25a29c56ebd1aba571bac0bc", 4368 },
  ["6855 windows-x64"] = { "d865d71f16d342a717e0c0942e0dad1cf44b913b7fca0cec0feaf72529b1128f", 4464 },
  ["6855 linux-x64"] = { "30ea77120de8a784b087461e7dbcfd3ab1d8e0ae34cb325fc74e5d3c2e1b67da", 4368 },
  ["6911 windows-x64"] = { "9f1216edb1c36a6c48fe0f9ce6960cbea56e512076256f67e3d5e7f4f45efa62", 4512 },
  ["6911 linux-x64"] = { "a8e153d7f3c02cc30c0ad94c1b51f7fa618100c99247b81e2bc603fa91e2c491", 4416 },
  ["6947 windows-x64"] = { "4768382786baf4829703298531fdea2d9ebdfa171f066648441a0b1ea99bd865", 4512 },
  ["6947 linux-x64"] = { "7739cc2328360fcc5d24291bf2d177fce9147967bd6440fc86a733bbb07e80b1", 4416 },
  ["6989 windows-x64"] = { "672555bb9f5257fc5f2535bc537fb39fad1fe3d8abd7d1a4d69c40b59454d349", 4512 },
  ["6989 linux-x64"] = { "823dd436560ce90b4758f4316d76a162712523a571bf2a321fdf46a937fb2771", 4416 },
  ["7022 windows-x64"] = { "220792a387e7053ea4c956767cef2c2db49b6da335202cd0f9577ca17a28ee29", 4512 },
  ["7022 linux-x64"] = { "fa1a8f67ba66ab9442e47fb7465b23303a7aabdd151efe49a2e6a25f70615499", 4416 },
  ["7054 windows-x64"] = { "727ccd0a8662a242d24cca3b647c86f6eb1f9c2414e398d6b80391194a8667ca", 4512 },
  ["7054 linux-x64"] = { "89f00eab654895c505994dc093230a31037e9c432911bdc71ee85bf424695043", 4416 },
  ["7077 windows-x64"] = { "2c2fc49318647763f24e5a81d0a481cf32968f8eaf944e7f932253f3cf464ebe", 4512 },
  ["7077 linux-x64"] = { "2914b641573c5e53d12b7bfe05667f1940dedf008459f40a1ca57abe2ec4944d", 4416 },
  ["7120 windows-x64"] = { "08aec6a5514ce8975fd1492053c94f79b6b57db0a697b1dcf82894dafadd3d49", 4512 },
  ["7120 linux-x64"] = { "8bb22147254919fcd3f241d1de5c067399c889bee3d10b38970261d8d71003c6", 4416 },
  ["7154 windows-x64"] = { "6ddfcaee0ec746079681ea5a1ac52e68755e7ff6f7d5ed9aa4665716f56035ff", 4512 },
  ["7154 linux-x64"] = { "7abb7f24adff711bf1f5e9ab1e796ff82a1314d653d303f994a5bf023f9cc830", 4416 },
  ["7185 windows-x64"] = { "3c1f38d4e1d67535f3fd04704db17b39868cc9d04071ccf4173821e3219afe6f", 4512 },
  ["7185 linux-x64"] = { "0574be891583dcb8753cc67f154961a866dfd2b69e9560084686fe1e388062f1", 4416 },
  ["7220 windows-x64"] = { "a52a8bed0a1255324b2c4ec592472bd282ec7c6c126b8deaaee8a43603e21441", 4512 },
  ["7220 linux-x64"] = { "0bf27ea450a3b4a26ae0b33b17215a6f6a53697edfec07df51c8a95903f10836", 4416 },
  ["7259 windows-x64"] = { "dc49693d33834e2272ced063ef3ec42084af34aeac3ad272a55b0ad2706abbf2", 4512 },
  ["7259 linux-x64"] = { "933ce7b6799059164f090a7f0a2c6d908bf818fe852c34d3114a93dbfc2e0c91", 4416 },
  ["7286 windows-x64"] = { "875d12f637e8809830dd27ce7f2ef7f51566079b68d62f8a510dd63de634127b", 4512 },
  ["7286 linux-x64"] = { "4e263b053d694a1a24324555a112516a2d84e380ad88e820dd57bb0b477180be", 4416 },
  ["7314 windows-x64"] = { "8acb5b91733e501830c08144e6caf33c949a8c91b9412262740f318dd71e7ff5", 4512 },
  ["7314 linux-x64"] = { "1fb3ea090bc7ee7a52d622cc165a1b112d9a593f49bc422363ced7cd285ee01b", 4416 },
  ["7343 windows-x64"] = { "be56c466504acfbb43c7f55e00653856cc66e8d8158daea9336f4f489f291fba", 4512 },
  ["7343 linux-x64"] = { "8d22cfce59ded04bebd86c8ab424718a3b3f29066c3fad3b0bdc8654b1232455", 4416 },
  ["7364 windows-x64"] = { "d74bb240d8b3bda2a7086dc3abd3174cda8a7487dd7e52a0856da7f95a5554b1", 4512 },
  ["7364 linux-x64"] = { "6d56ecc09307dd1663f0c25e846c42c90cd5efa7e9161a6170c54e093e9785bf", 4416 },
  ["7386 windows-x64"] = { "6aa53c5486d7df65b83c5db4db86ad16f9083f2cf6914e5a3e797a9e3cf1b8fa", 4512 },
  ["7386 linux-x64"] = { "1e7e2f354acdb61fdc926c2553f00ab77bf4bc8e226713950abdbb32e7486794", 4416 },
  ["7434 windows-x64"] = { "037192cd979d1e80d4b0df1d43f7c6d56cf2a22e6385ae637b56c6d30d675a76", 4512 },
  ["7434 linux-x64"] = { "9f2c0387b4b39786ee534bfa9dbe56a9853b394e3f570be02c1f6178d66b4437", 4416 },
  ["7457 windows-x64"] = { "44deba1ce1f9a222cae7771c12b8d66c3e5dcc3838cd29f199560500d9dcc848", 4512 },
  ["7457 linux-x64"] = { "7cdfa25dce82750daea05b7c096a2560791cda2bbbacd4d06850c1fa6aafdaad", 4416 },
  ["7485 windows-x64"] = { "436e8743f660941c3a9f02f203cd2d895fed2ebf6a90452743d2a138629c4392", 4512 },
  ["7485 linux-x64"] = { "5083ae0e678bc8f80835c95ba4cb1ab2dbc228c21aa52665613121b266c11604", 4416 },
  ["7515 windows-x64"] = { "1edec16a288ad709d800a29e4271c183ffbd5a09cf563411b462323664300b6b", 4512 },
  ["7515 linux-x64"] = { "de8c7e4da49f5434b6fe8917aaa62d7d005efeb9e37c6870463580f9478f4acf", 4416 },
  ["7564 windows-x64"] = { "25caa6319f7da3a884a85706461994b295f5abb6df4765adc9ada980ddbf3525", 4512 },
  ["7564 linux-x64"] = { "6e3a21d1259dd9b50ac1183d7b5da6b5faf1dd1a3341aacc34abd507f2d950cf", 4416 },
  ["7613 windows-x64"] = { "88a1f8baec85ecc210305a0de888c2b2e03972c61f7430fead73366c4c854d90", 4512 },
  ["7613 linux-x64"] = { "a0833acc47b227a60d41d1a2abfaa065e440638b01b34cf5254f22c6a89e9372", 4416 },
  ["7651 windows-x64"] = { "777b5cb820be6a87cbdfc1f30e6fccd4dd7c631df9874c67e79d482120646411", 4512 },
  ["7651 linux-x64"] = { "50fde4f81239417c1f5a53e76ccca48a996a108e6a525c19dee3b7da0367977c", 4416 },
  ["7693 windows-x64"] = { "88013d9b2ae207bd3aca1edb273009788053315b081824468c481a166fef60f4", 4512 },
  ["7693 linux-x64"] = { "96c6fac9c160e7933576faedb49e7eff91529a944998af77b9154ec6752bbcf8", 4416 },
  ["7732 windows-x64"] = { "6ccf7e6fcfec1dffeb82f0c4f17f85352aff353c30e51b1d94a9b5660dcc2017", 4512 },
  ["7732 linux-x64"] = { "945a9afc5882102349bb3ac1e27220de992b3cc22e4812ec684bd57b3fd4293b", 4416 },
  ["7764 windows-x64"] = { "32e42064682172a6caacea394848faca32baeaf28b4d87541ff5d60504dbe371", 4512 },
  ["7764 linux-x64"] = { "0295fb181305bf9d0206c1f99ad218a18ed96210ccffab6ea3403125ff452e1a", 4416 },
  ["7811 windows-x64"] = { "a7076f554a50c0077a006aaf2618a0f4679dd1390113528c996d465004715f3b", 4512 },
  ["7811 linux-x64"] = { "b0a53c8acb3bf1e9f0f0d2ca0fc999d565eab751c3dc091c1f0ca56480ac66a6", 4416 },
  ["7834 windows-x64"] = { "afc7abca26a60b383d30774123a61a28f6081b21a837169f8a7ed30a834ac29c", 4512 },
  ["7834 linux-x64"] = { "104bd72a435c41875873c646907f94281725ca6150b21625fa9bbe05f851f854", 4416 },
  ["7883 windows-x64"] = { "8b0c22682a750219ef4009ed5c76b555415cf666c8dfa4b5b633ebbb0d0eb386", 4512 },
  ["7883 linux-x64"] = { "59ccadd9444528f7a0f3d3823468403bdb3c3ada3eaf587281eaa49120031906", 4416 },
  ["7913 windows-x64"] = { "d22e3d0d4e3c8a9a8b79972e445838a9cdcc6c265c1e31d297011b2131ead182", 4512 },
  ["7913 linux-x64"] = { "e15877fa360ffee1d445cf47c30111229a7938997c7e527a1ae3a0e79b3245ab", 4416 },
  ["7942 windows-x64"] = { "21c0641844e61a8d79cb90c8f6fb1055c567fc9a275a9bf3c920b00ba92a4b2a", 4512 },
  ["7942 linux-x64"] = { "83b17e9c529dd885da38973ea46f7d2a0cf1b44f7ea89946ec75d6513c7e2b65", 4416 },
  ["7968 windows-x64"] = { "3e125db832d2af61368e06c31301960fc7952c2500ef9247b3ed9218c1b0baf6", 4512 },
  ["7968 linux-x64"] = { "60578d3a68a75339f2529f94dece2117a6364fce302b54e26a81d8f4120a44c9", 4416 },
  ["8016 windows-x64"] = { "f0b972da2f07db1883576bdc83272144800a2555ab47ce844a1f401d5c0eed8e", 4512 },
  ["8016 linux-x64"] = { "e63bcb43271e8f972af6dbfb7a1d851513e5eee0ccce85870b855c7296a68e73", 4416 },
  ["8054 windows-x64"] = { "88c337b7f74f6fbbbec98883c2ae896e2749964f7f4fdb116e8a8d5ff8e5ff44", 4512 },
  ["8054 linux-x64"] = { "5153abeb3947f3c58ed26397363b87b70f8fab278463c064d82d489260eb3b81", 4416 },
  ["8095 windows-x64"] = { "99674f0044adb9b8162316f3bf8acc6995738d2ef00eab72ede4f10bfe0ae843", 4512 },
  ["8095 linux-x64"] = { "37a96b9e011543d0f110865cb53ca3e54cf97b1d8e6377713a7fd1e9789b454f", 4416 },
  ["8121 windows-x64"] = { "1e82724a69aa1cc10c111e9d250ff93f014a0dc04fb123691a414127c2405752", 4512 },
  ["8121 linux-x64"] = { "44a356a09c29825e6e807227599c72645f0950120a9f30a4819e031d71e5514c", 4416 },
  ["8150 windows-x64"] = { "af48641fb8e7c0bb7b13a6a28295c39418f84a3fb07d45799774b69e1fb00a09", 4512 },
  ["8150 linux-x64"] = { "855a4b39f4d52a7a78a67a29826169ecaa93bdc8eff344b31daea026b035cb19", 4416 },
  ["8174 windows-x64"] = { "69bd155db4804d1dae39bb0cd3d5c5c47959e68da4e8d221af945f4e5c587de3", 4512 },
  ["8174 linux-x64"] = { "886b062ebba71cdcaab8834f3930b65939e1cd5ac0999bb6ad59829c9328b9b4", 4416 },
  ["8218 windows-x64"] = { "afa1fbcde06ef24dd1476a122e99a10a6d72daf05444ad4eeec221d8ad9650dd", 4512 },
  ["8218 linux-x64"] = { "f8d125e159fc0a7d5fb25e4b1bce911e53b75c47b0fb015a0772916faaf4130f", 4416 },
  ["8246 windows-x64"] = { "fb103dcce1fcfda0ad872354a69f31001eb4fd3b6fa69919e18a79762741f8c1", 4512 },
  ["8246 linux-x64"] = { "240e190d54ee12a2e8c263fc7a62a51de1f85eb0cd9f6dd080406f16c966e929", 4416 },
  ["8289 windows-x64"] = { "3bd18a494e0f266fc2afd13b769cb80b8368433faece9055f09c407a93363343", 4512 },
  ["8289 linux-x64"] = { "837253f47a065539e47b3cffa4acfc68fc0aca43c12117584c258a08c1f20ba8", 4416 },
  ["8316 windows-x64"] = { "1c0cad19ded8636429ad6bf3ab16290ad454762bf51164692c18748e05198212", 4512 },
  ["8316 linux-x64"] = { "03178055f5b2ac23d9e24e16d09c9ad18e8e84d0046028e18a71b5cd1cc58310", 4416 },
  ["8357 windows-x64"] = { "a736ea57ab08e352616e03a702f1b264dc48b86ed02581428740a13b3589ff15", 4512 },
  ["8357 linux-x64"] = { "49c1d16488591d04e7824a981fa656f6dce2e02e998ef3501fe450fe816cac0d", 4416 },
  ["8389 windows-x64"] = { "c2cffa9cf1316c49240b17ccc987e8acfbef2299a30ad2e6f70a68b2e976218e", 4512 },
  ["8389 linux-x64"] = { "a15436f1d3c07354d3ef993c7e162895e6fc5d942dfb66e5911a97e216a9c9cf", 4416 },
  ["8417 windows-x64"] = { "6d9b60af1261fb492429cbdea19847704d0987a6284a3907bb6f96e8eb5f9723", 4512 },
  ["8417 linux-x64"] = { "acf8284e80cf3c473e6d45459695d5f804f2107e84dcec2469c72cfe5853dcf6", 4416 },
  ["8448 windows-x64"] = { "4dbbd9cbb8a3004ee535e0aca17338beea98661bce7bc21fabdb5e0460ff6f36", 4512 },
  ["8448 linux-x64"] = { "4c74c03423091d4a3c1188b42f9b1eec86230f15b99f73c58f99ac07a61e60ce", 4416 },
  ["8470 windows-x64"] = { "097f30182c7f8c9d33057971f75f41535b80f4a12385b7b99996e24693e4b179", 4512 },
  ["8470 linux-x64"] = { "f04c4751663da6bf78014020fd527c04d8847847779cf9f67ef351f5b79be240", 4416 },
  ["8503 windows-x64"] = { "b2ca815f1b5ea0ee0a3df4c372e5d1f2b0c217ace11d476685c989e05ca7cd84", 4512 },
  ["8503 linux-x64"] = { "525cfab095e46c98600addff75140f504feb4d7a2b9bfc50e44a670116516a4a", 4416 },
  ["8549 windows-x64"] = { "683cfbb6762adac3d712ff57830e40f1f6706d16bc6c5f8cb5a76021637b795a", 4512 },
  ["8549 linux-x64"] = { "9300a9cbd530fd70fdfe8a5d72c893c8afa05e75278a6b3f45c216c144b79d06", 4416 },
  ["8572 windows-x64"] = { "4c01302905c4295a1ad3d8939e7ae9197d4fe5a32e41f0c34b88c6546787633c", 4512 },
  ["8572 linux-x64"] = { "7c1cadcc2951fa7d4e0d5961982a6428789f6a1e42641cc9341f9ee7d3a51b05", 4416 },
  ["8616 windows-x64"] = { "8622a6062ff3b98b160ece8e2b006a46182a32e3e9a409107c38d023e633c346", 4512 },
  ["8616 linux-x64"] = { "58cd0eaaabf88d5668d87acd55f2ccf06d3025628a59867add8ac6c53b0896db", 4416 },
  ["8664 windows-x64"] = { "eec511dce8aeefe3de79faa5dcfcc38c66d76841e3572c854fb76d264d58b187", 4512 },
  ["8664 linux-x64"] = { "64d2efe80d84e9656f39fb306d480e5987d3440f23f5f79242edad185dd83a15", 4416 },
  ["8686 windows-x64"] = { "d1d89d9d0243e5d61e903fbfa0526dba9cdcaf1b86eb05d55823e29ff1346fc1", 4512 },
  ["8686 linux-x64"] = { "a1df2b5c76cdd05a26e69e187b8e9a2ad28d54f0e6ae554f1e4aed5168a02ad8", 4416 },
  ["8732 windows-x64"] = { "a11f7d14ae1df4945fbd0329806de23adf1c4e307dff256f7eb536c4f821a01b", 4512 },
  ["8732 linux-x64"] = { "e1fcb9f3b6a134ff70327cf1fe250e4435e82c4f83a4ffcc8af1f336df0b2e0d", 4416 },
  ["8766 windows-x64"] = { "53ef0dc47a389ee8442812f362b0dddefa9aad72b9a1bf75e832bed4462c3d18", 4512 },
  ["8766 linux-x64"] = { "86afc2cf905e52591ed2f2e95f1e1291420a0a754d003fba3834e40633a126e0", 4416 },
  ["8813 windows-x64"] = { "010a445dd28831bc2c03d2fabad4641dc3fec752f0bfe041f1abb9dbe03916f0", 4512 },
  ["8813 linux-x64"] = { "f523957dc0695a04e67b4aff24b5bb07091960b1233edfedb342a4d16bf41c94", 4416 },
  ["8844 windows-x64"] = { "6a25a46a411bf175e9b4274994fcc279e1a4e15138a3fcfd286076d498d28ed2", 4512 },
  ["8844 linux-x64"] = { "140ed15f65b72b7587c65616de61614bf6f187bc398b5eb40dde56e2fe4da360", 4416 },
  ["8869 windows-x64"] = { "74538fbad714170d5235b201513262d5013a19b0e935cf357f9656b982f7207c", 4512 },
  ["8869 linux-x64"] = { "f75902c802c93690d31811519c8b483558de541d9714ffa9db4e34c6c4608f37", 4416 },
  ["8902 windows-x64"] = { "5f454672566155262c049a37ddec3f3929ea972f6e4d24ebfcbaedca49c25791", 4512 },
  ["8902 linux-x64"] = { "caa9ee7834a664d7fc366980c8c11fb8421b843decc7b525ca7a76069ebfeff8", 4416 },
  ["8938 windows-x64"] = { "87416cdbf5ff216c6eb97ce3d54ed679385505609e0b6fb44ea0b457114987c4", 4512 },
  ["8938 linux-x64"] = { "90f39627f6304b3d5b3be31b750001554a6d0c3895cbaf4e15d65b625a7c6ade", 4416 },
  ["8969 windows-x64"] = { "e027f90bccf4567d8c167ae93cd442979f47dcf494dc2d82a52fc0007eed5d4d", 4512 },
  ["8969 linux-x64"] = { "a56926fe760a2324baf7d4e6be73890c94d5c8a32a4e316ea2097d3f9931446a", 4416 },
  ["8999 windows-x64"] = { "70fd34643b3f7fd2be75375cca9e62104c09375e188ee5b5e0efb0b29a8b9089", 4512 },
  ["8999 linux-x64"] = { "7bd998ea3f0851d760d355647dad04ef5da673d50208d11f820fd8c32918466b", 4416 },
  ["9034 windows-x64"] = { "add055d14ca00d623121df43a1678f427eecab79e5720409945e203bc0abd65b", 4512 },
  ["9034 linux-x64"] = { "8354c6416145c74daf008a8b3426de8887b2c89e822172b42a8bdf0467bc9435", 4416 },
  ["9083 windows-x64"] = { "51fa2b02de7a51c79b16dc205cf8837c2455a833599e80f5ce67fadc5bfbdd67", 4512 },
  ["9083 linux-x64"] = { "90a5c4ce799708c26b7c9f7a2bf873671acf3f4ccdc4869a6788c7b7843bef05", 4416 },
  ["9113 windows-x64"] = { "fabcbcb87ffc550f0bd3bb68b8d226ac717cc2881aab3725e9beef0c5a53f44f", 4512 },
  ["9113 linux-x64"] = { "eddfaa33e1fd02e8a8670b197a633a731ced65aadc589d662840df40e69d1c12", 4416 },
  ["9159 windows-x64"] = { "7d48c123394d2b2b78b2b63094b64679b3e722f24f752607250a5169755fa5c4", 4512 },
  ["9159 linux-x64"] = { "65953d25f78b3efda757f73aa64879f0dde1a0f1219bb18fe863a77bed474706", 4416 },
  ["9180 windows-x64"] = { "767e1dcb017b779d41e3f27534bd34e843b756cde80486bb746523e9aae6b165", 4512 },
  ["9180 linux-x64"] = { "2b7172602e795d7b56f890072aafc47713a87ed65f29ea7d5b7a44d35617a2d6", 4416 },
  ["9216 windows-x64"] = { "5b1c011df1bd3131eae34be362a5fd95193cd0019c9d2b7393e889aba7fe12a4", 4512 },
  ["9216 linux-x64"] = { "4e4e08bb91c2ddc5d5ec36102bdf35156e1f41fbd4a6119c6b312696410eb117", 4416 },
  ["9255 windows-x64"] = { "e2fd8eed1e885372ebcf9019198d694dab70dbbaa75d917fddd3b100ede45310", 4512 },
  ["9255 linux-x64"] = { "80f904f8dabc554a34d02be19ab715bda4f4dcad39adb42910fd35af5a497f53", 4416 },
  ["9302 windows-x64"] = { "05a39a30203822ef79e0fd65e78790c2bb1f8ee6660dcbc969d48f9a5a2cfeaa", 4512 },
  ["9302 linux-x64"] = { "d4214ac86ff45b8c38cecfeec0afafbe477c8a2d047e20490d8524bc4bcad50a", 4416 },
  ["9336 windows-x64"] = { "a005c86e5ac63c607f92533889bbef4cc10283fcd2d4875b5ecfa3f5e371d656", 4512 },
  ["9336 linux-x64"] = { "5dd932f899e1d203a05153edfa653631e1df2c8fea8dbea886f659fbc9d50c97", 4416 },
  ["9372 windows-x64"] = { "4ff6eec9fa5315c35de14f1dc9f814ffe42e8fe2181ad7165c11ac9157704e46", 4512 },
  ["9372 linux-x64"] = { "b03e6f6800d02ebb9714d8519dbcc78c7921e0449dd48c0347fc51093a3f9a7c", 4416 },
  ["9398 windows-x64"] = { "a6a0b810f56925bc283fb56083b02d3021baad049bb483089e50c6ec45b15653", 4512 },
  ["9398 linux-x64"] = { "b077afc175182632e182065038c28d9f85564385e2729d55a30a5aad7ddb05ce", 4416 },
  ["9440 windows-x64"] = { "caa854901280894ff3b86e0ae7b7cf86c8167322e51e61c965266e0948f41832", 4512 },
  ["9440 linux-x64"] = { "cfbaeb5c9ab30b47136be6fc00778ece2028279e4f8975683eea82911e1282f4", 4416 },
  ["9476 windows-x64"] = { "49791e230c07c501b2282f3a3e966515a1dbaa47bf09ac0e42821a97ff56cd1f", 4512 },
  ["9476 linux-x64"] = { "72e55cc7774621af50886cf492ad8699bc31f71b5cee78694d34365c514026fa", 4416 },
  ["9516 windows-x64"] = { "1a6a177dae612dfa05e0c4888ba403d31e923372869ccc6816fc4c52ddfba00f", 4512 },
  ["9516 linux-x64"] = { "700a42d29e63e384b07b36e85afb3f5db7e500107254cebdde7c6d53eb4a51f2", 4416 },
  ["9561 windows-x64"] = { "7120667925f97d54cafe008682c4adc17d497150c1fd2efef00c6156b4f4e8cc", 4512 },
  ["9561 linux-x64"] = { "ecd0ab2717ff1102a5ef60378448e10a3d21ba61b4e3614088c458135ee30522", 4416 },
  ["9590 windows-x64"] = { "3a2dcd825aba3ff8acb0052eefb203eab2c43cfe264db32f333862078898bf35", 4512 },
  ["9590 linux-x64"] = { "f4fd05f4398f7ec22cfd6da71b9aa52d5f25f719adab406f799369f976348159", 4416 },
  ["9616 windows-x64"] = { "fbe5e78bf66977383f6146a5861cc2cf8afc24edff0f09b9ad78e787dcd45329", 4512 },
  ["9616 linux-x64"] = { "30250b19f0923eff13c46065a326d412bc9aaa2d1737ae29206bf252205ee599", 4416 },
  ["9665 windows-x64"] = { "0e6aedd501aa54d8d860d854eaee2af7e67350e44df944aa0117b258afe1666c", 4512 },
  ["9665 linux-x64"] = { "3c0c9a7c9cd453b38fb1c278152ae4b78de1990957228f2a8b4974f5cd52bb2d", 4416 },
  ["9689 windows-x64"] = { "6c967041352ca0dc43a288192c43d6f808b72bb4f9097307d5e400afba68bf4c", 4512 },
  ["9689 linux-x64"] = { "bf0c5dc88887c1f74f177511e5966bef722ca6b40d27dc59bf7e8dfa50174405", 4416 },
  ["9720 windows-x64"] = { "152800668f6f8222909ccf6890a92c9ccbfe8e42abb172ab3089dc641437aefc", 4512 },
  ["9720 linux-x64"] = { "c8625b58c162b42d9d316b88e6a2656694485cc17aee279f46f15f8fcc9dd523", 4416 },
  ["9749 windows-x64"] = { "8ee343a9c9e17be3011531cccd846db3270e64f69bd44c5aaa6d9c3d4b9757ce", 4512 },
  ["9749 linux-x64"] = { "35dd70e60d3c9a4f2f0341df4aa129eef67c90061375a2c13982abd756186b5c", 4416 },
  ["9787 windows-x64"] = { "782dc7ac42aefd6d7a7d691e6f39b1ab0b73af8e6d801719f83b3cc1cb68148e", 4512 },
  ["9787 linux-x64"] = { "1297d5900584073261173b949de706c46989a31f19bc00aa11895c564be3f3e8", 4416 },
}

for _, build in ipairs(smartertrack_builds) do
  local downloads = {}
  for _, platform in ipairs(SMARTERTRACK_PLATFORMS) do
    local digest = SMARTERTRACK_FILES[build.number .. " " .. platform]
    local file = "smartertrack/SmarterTrack_" .. build.version .. "_" .. platform .. ".zip"
    downloads[#downloads + 1] = { platform = platform, file = file, sha256 = digest[1], size = digest[2] }
  end
  build.downloads = downloads
end

local smarterstats_builds = versioned({
  { "11.0", 6050 }, { "11.1", 6161 }, { "11.2", 6260 }, { "11.3", 6391 },
  { "12.0", 6500 }, { "12.1", 6604 }, { "12.2", 6700 }, { "12.3", 6811 },
}, {})
build_era({
    6890, 6922, 6949, 6989, 7016, 7046, 7076, 7117, 7162, 7204, 7228, 7261,
    7304, 7347, 7377, 7410, 7435, 7470, 7495, 7522, 7563, 7596, 7623, 7660,
    7707, 7732, 7780, 7821, 7860, 7892, 7929, 7951, 7986, 8034, 8059, 8085,
    8116, 8143, 8177, 8205, 8248, 8286, 8318, 8354, 8388, 8430, 8459, 8499,
    8531, 8564, 8592, 8613, 8641, 8672, 8707, 8746, 8786, 8810, 8831, 8876,
    8912, 8952, 8997, 9044, 9083, 9131, 9153, 9186, 9220, 9254, 9284, 9333,
    9364, 9408, 9440, 9466, 9499, 9531, 9574, 9598, 9621, 9658, 9681, 9709,
    9754,
}, smarterstats_builds)

return {
  policy = {
    ms_months = 12, trial_days = 30, migration_days = 30, migration_extra = 1,
    checkin_grace_days = 7, phone_after_days = 7, disable_after_days = 14,
    renewal_basis = "from_expiry",
    ms_percent = 25,   -- a year of M&S costs a quarter of the license
  },
  products = {
    { id = "smartermail", name = "SmarterMail", unit = "mailboxes",
      editions = { "professional", "enterprise" },
      addons = { "eas", "ews", "message_sniffer", "cyren_antivirus" },
      addon_prices = { eas = 9900, ews = 9900, message_sniffer = 14900, cyren_antivirus = 14900 },
      builds = smartermail_builds,
      prices = prices_for({ 14, 15, 16, 100 }, function(i)
        return {
          professional = { [100] = step(15000, i), [250] = step(30000, i),
                           [500] = step(50000, i), [1000] = step(80000, i) },
          enterprise = { [100] = step(30000, i), [250] = step(60000, i), [500] = step(100000, i),
                         [1000] = step(150000, i), [2500] = step(250000, i),
                         unlimited = step(400000, i) },
        }
      end),
    },
    { id = "smartertrack", name = "SmarterTrack", unit = "agents",
      editions = { "professional", "enterprise" },
      addons = { "live_chat_translation" },
      addon_prices = { live_chat_translation = 4900 },
      builds = smartertrack_builds,
      prices = prices_for({ 12, 13, 100 }, function(i)
        return {
          professional = { [5] = step(20000, i), [10] = step(30000, i), [20] = step(50000, i) },
          enterprise = { [5] = step(50000, i), [10] = step(80000, i), [20] = step(120000, i),
                         unlimited = step(150000, i) },
        }
      end),
    },
    { id = "smarterstats", name = "SmarterStats", unit = "sites",
      editions = { "professional", "enterprise" },
      addons = { "seo_reports" },
      addon_prices = { seo_reports = 4900 },
      builds = smarterstats_builds,
      prices = prices_for({ 11, 12, 100 }, function(i)
        return {
          professional = { [10] = step(10000, i), [25] = step(20000, i), [100] = step(40000, i) },
          enterprise = { [25] = step(40000, i), [100] = step(70000, i), [250] = step(100000, i),
                         unlimited = step(150000, i) },
        }
      end),
    },
  },
}
