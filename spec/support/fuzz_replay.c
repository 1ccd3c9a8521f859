/*
 * fuzz_replay.c -- a main() for the libFuzzer targets of spec/fuzz/ that
 * runs each file named on the command line through the target once, so a
 * target built without libFuzzer and sanitizers runs under valgrind (the
 * valgrind round of spec/support/run-suites.sh): valgrind sees reads of
 * uninitialised memory, which ASan cannot.  Not a fuzzer: nothing new is
 * tried.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Reads a whole file into a malloc'd buffer of exactly its size (so
 * valgrind sees a read past the end); NULL when it cannot. */
static uint8_t *slurp(const char *path, size_t *size)
{
  FILE *f = fopen(path, "rb");
  uint8_t *data = NULL;
  long len;
  if (f == NULL) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    data = malloc(len > 0 ? (size_t)len : 1);
    if (data != NULL && fread(data, 1, (size_t)len, f) != (size_t)len) {
      free(data);
      data = NULL;
    }
    *size = (size_t)len;
  }
  fclose(f);
  return data;
}

int main(int argc, char **argv)
{
  int failed = 0;
  if (LLVMFuzzerInitialize != NULL) LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; i++) {
    size_t size = 0;
    uint8_t *data = slurp(argv[i], &size);
    if (data == NULL) {
      fprintf(stderr, "%s: cannot be read\n", argv[i]);
      failed = 1;
      continue;
    }
    LLVMFuzzerTestOneInput(data, size);
    free(data);
  }
  printf("replayed %d inputs\n", argc - 1);
  return failed;
}
