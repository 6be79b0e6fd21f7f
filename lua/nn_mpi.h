/* nn_mpi.h: Open MPI, opened at run time. nn.sweep (lua/nn_mpi.c) and
 * nn.distributed (lua/nn_distributed.c) share one libmpi and one MPI_Init.
 *
 * libmpi is not linked: nnl_mpi_start opens it with dlopen when a script
 * asks for MPI (under mpirun), so that without mpirun nothing about MPI is
 * needed at build or run time, and nn builds where mpi.h is absent. The
 * declarations below are Open MPI's ABI, from its mpi.h (4.1), since they
 * cannot come from mpi.h itself: a handle there names a symbol of libmpi,
 * which a library that is not linked against it cannot refer to; here it
 * is looked up with dlsym instead.
 *  - handles (MPI_Comm, MPI_Datatype, MPI_Op, MPI_Request, MPI_Errhandler)
 *    are pointers; the predefined ones are the addresses of global objects:
 *    MPI_COMM_WORLD is &ompi_mpi_comm_world, MPI_FLOAT &ompi_mpi_float...;
 *  - MPI_Status is struct ompi_status_public_t, laid out as nnl_mpi_status;
 *  - MPI_SUCCESS is 0, MPI_ANY_SOURCE and MPI_ANY_TAG -1, MPI_IN_PLACE
 *    (void *)1, MPI_STATUS_IGNORE NULL, MPI_THREAD_FUNNELED 1.
 * Another MPI (MPICH) would need its own; none is tried. */
#ifndef NN_MPI_H
#define NN_MPI_H

#include <stddef.h>
#include <sys/types.h>

typedef void *nnl_mpi_handle;

typedef struct {
  int source, tag, error; /* MPI_SOURCE, MPI_TAG, MPI_ERROR */
  int cancelled;          /* Open MPI's private fields */
  size_t ucount;
} nnl_mpi_status;

enum { NNL_MPI_SUCCESS = 0, NNL_MPI_ANY = -1, NNL_MPI_THREAD_FUNNELED = 1 };
#define NNL_MPI_IN_PLACE ((void *)1)

typedef struct {
  void *library;
  nnl_mpi_handle comm_world, errors_return;
  nnl_mpi_handle byte, float32, float64, int64, uint8; /* datatypes */
  nnl_mpi_handle op_sum, op_max, op_min;
  int (*init_thread)(int *, char ***, int, int *);
  int (*initialized)(int *);
  int (*finalized)(int *);
  int (*finalize)(void);
  int (*comm_rank)(nnl_mpi_handle, int *);
  int (*comm_size)(nnl_mpi_handle, int *);
  int (*comm_idup)(nnl_mpi_handle, nnl_mpi_handle *, nnl_mpi_handle *);
  int (*comm_set_errhandler)(nnl_mpi_handle, nnl_mpi_handle);
  int (*error_string)(int, char *, int *);
  int (*send)(const void *, int, nnl_mpi_handle, int, int, nnl_mpi_handle);
  int (*recv)(void *, int, nnl_mpi_handle, int, int, nnl_mpi_handle, nnl_mpi_status *);
  int (*isend)(const void *, int, nnl_mpi_handle, int, int, nnl_mpi_handle, nnl_mpi_handle *);
  int (*iprobe)(int, int, nnl_mpi_handle, int *, nnl_mpi_status *);
  int (*probe)(int, int, nnl_mpi_handle, nnl_mpi_status *);
  int (*get_count)(const nnl_mpi_status *, nnl_mpi_handle, int *);
  int (*test)(nnl_mpi_handle *, int *, nnl_mpi_status *);
  int (*request_free)(nnl_mpi_handle *);
  /* the non-blocking collectives nn.distributed runs */
  int (*iallreduce)(const void *, void *, int, nnl_mpi_handle, nnl_mpi_handle, nnl_mpi_handle,
                    nnl_mpi_handle *);
  int (*ibcast)(void *, int, nnl_mpi_handle, int, nnl_mpi_handle, nnl_mpi_handle *);
  int (*iallgather)(const void *, int, nnl_mpi_handle, void *, int, nnl_mpi_handle, nnl_mpi_handle,
                    nnl_mpi_handle *);
  int (*ireduce_scatter_block)(const void *, void *, int, nnl_mpi_handle, nnl_mpi_handle,
                               nnl_mpi_handle, nnl_mpi_handle *);
  int (*ibarrier)(nnl_mpi_handle, nnl_mpi_handle *);
  pid_t owner;    /* the process that called MPI_Init: only it may use MPI */
  int rank, size; /* size is 0 until MPI_Init */
  int ended;      /* MPI_Finalize was called: MPI cannot start again */
  int abandoned;  /* a peer failed: exit without MPI_Finalize, which would wait for it */
} nnl_mpi_library;

extern nnl_mpi_library nnl_mpi;

/* Loads libmpi and calls MPI_Init_thread once (later calls do nothing);
   NULL when MPI runs in this process, else why it cannot. */
const char *nnl_mpi_start(void);
/* MPI was started by this process and is not finalized. */
int nnl_mpi_ready(void);
/* MPI_Finalize, once, in the process that started MPI (unless abandoned). */
void nnl_mpi_finalize(void);
/* "MPI_ERR_TRUNCATE: message truncated" for an MPI error code. */
const char *nnl_mpi_error_text(int code, char *buf, int len);

#endif
