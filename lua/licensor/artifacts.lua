-- licensor.artifacts -- the build files a catalogue's downloads name,
-- checked in an artifact directory (licensor artifacts check DIR).
local _M = {}

-- command(ctx, cat, dir): the CLI command's work (licensor.cli's ctx).
function _M.command(ctx, _, _)
  ctx.out("no downloads")
end

return _M
