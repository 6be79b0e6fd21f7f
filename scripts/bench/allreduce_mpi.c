/* allreduce_mpi.c: Open MPI's own MPI_Allreduce of a float32 buffer, timed,
 * for scripts/bench/distributed.lua to set nn.distributed.all_reduce
 * against. Built with mpicc by that script and run under mpirun:
 *   mpirun -np 2 ./allreduce_mpi BYTES ROUNDS
 * Rank 0 prints "seconds S": the median time of one MPI_Allreduce (sum, in
 * place), after a barrier before each so that no rank's lateness counts. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  long bytes = argc > 1 ? atol(argv[1]) : 25L * 1024 * 1024;
  int rounds = argc > 2 ? atoi(argv[2]) : 10;
  if (bytes < 4 || rounds < 1) {
    fprintf(stderr, "usage: allreduce_mpi BYTES ROUNDS\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  int count = (int)(bytes / 4), rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  float *buffer = malloc((size_t)count * sizeof *buffer);
  double *times = malloc((size_t)rounds * sizeof *times);
  if (!buffer || !times) {
    fprintf(stderr, "allreduce_mpi: out of memory\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  for (int i = 0; i < count; i++) buffer[i] = (float)(i % 7);
  MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); /* warm-up */
  for (int r = 0; r < rounds; r++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    times[r] = MPI_Wtime() - t0;
  }
  qsort(times, (size_t)rounds, sizeof *times, by_value);
  if (rank == 0) printf("seconds %.9f\n", times[rounds / 2]);
  free(buffer);
  free(times);
  MPI_Finalize();
  return 0;
}
