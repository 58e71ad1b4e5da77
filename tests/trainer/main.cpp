// The trainer tests' main(): the same binary runs as one process (label unit) and under mpirun -np 2 / 4
// (label mpi); rank 0 reports and any rank's failure fails the job (tests/trainer/test_support.h).
#include "tests/trainer/test_support.h"

int main(int argc, char** argv) { return rg::test::run_all_tests(argc, argv); }
