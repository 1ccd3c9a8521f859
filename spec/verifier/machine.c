/*
 * machine.c -- the fingerprint's sources read from a tree the spec builds
 * (spec/verifier_spec.lua, with ASan and UBSan).  It includes
 * csrc/lsrv_machine.c itself, so that the file-local reader of the mac
 * component can be pointed at a fake /sys/class/net: the library reads
 * only the real one and offers no way to redirect it (a redirect would be
 * a way to forge a fingerprint).  Not an example for vendors.
 *
 *   machine --mac NET
 *     the MAC addresses that count under NET (a /sys/class/net), joined,
 *     then the component as the fingerprint holds it; "none" and "-"
 *     when none counts
 *
 * Exits 0 when it ran, 2 for bad arguments.
 */
#include "lsrv_machine.c"

int main(int argc, char **argv)
{
  char value[1024];
  lsrv_component mac;
  if (argc != 3 || strcmp(argv[1], "--mac") != 0 || sodium_init() < 0) return 2;
  name_component(&mac, "mac", false, argv[2]);
  if (!mac_addresses(argv[2], value, sizeof value)) {
    printf("none\n-\n");
    return 0;
  }
  set_component(&mac, value);
  printf("%s\n%s\n", value, mac.hash);
  return 0;
}
