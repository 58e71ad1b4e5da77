// Run by abort_test.sh under mpirun: the last rank throws inside run_or_abort while the others wait in a
// barrier. Without the abort they would wait forever; with it the whole job ends with exit code 3.
#include "trainer/faults.h"

#include <cstdio>
#include <stdexcept>

int main() {
  auto comm = rg::comm::make_communicator("auto");
  rg::trainer::run_or_abort(
      *comm,
      [&] {
        if (comm->rank() == comm->world_size() - 1) throw std::runtime_error("injected failure");
        comm->barrier();  // blocks: the failing rank never arrives
      },
      /*exit_code=*/3);
  std::printf("rank %d: not aborted\n", comm->rank());
  return 0;
}
