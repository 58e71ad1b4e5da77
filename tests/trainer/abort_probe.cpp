// Run by abort_test.sh under mpirun. The last rank fails while the others wait in a barrier; without the
// job ending they would wait forever.
//   abort_probe throw   the failure is an exception: run_or_abort prints it and aborts with exit code 3
//   abort_probe kill    the process is killed (SIGKILL): mpirun must end the others
#include "trainer/faults.h"

#include <csignal>
#include <cstdio>
#include <cstring>
#include <stdexcept>

int main(int argc, char** argv) {
  const bool kill = argc > 1 && std::strcmp(argv[1], "kill") == 0;
  auto comm = rg::comm::make_communicator("auto");
  rg::trainer::run_or_abort(
      *comm,
      [&] {
        if (comm->rank() == comm->world_size() - 1) {
          if (kill) std::raise(SIGKILL);
          throw std::runtime_error("injected failure");
        }
        comm->barrier();  // blocks: the failing rank never arrives
      },
      /*exit_code=*/3);
  std::printf("rank %d: not aborted\n", comm->rank());
  return 0;
}
