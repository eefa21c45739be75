// Writes the seed corpus (corpus_requests.h) into the directory given:
//   bazel run //tests/fuzz:gen_corpus -- "$PWD/tests/fuzz/corpus"
// One file per seed and layout: NAME.contig and NAME.split.
#include <stdio.h>

#include <fstream>
#include <string>

#include "tests/fuzz/corpus_requests.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  for (const kmfuse::fuzz::Seed& seed : kmfuse::fuzz::CorpusSeeds()) {
    for (bool split : {false, true}) {
      std::string path = std::string(argv[1]) + "/" + seed.name + (split ? ".split" : ".contig");
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << kmfuse::fuzz::Input(split, seed.reqs);
      if (!f.good()) {
        fprintf(stderr, "cannot write %s\n", path.c_str());
        return 1;
      }
    }
  }
  return 0;
}
