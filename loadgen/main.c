/* loadgen: load generators for kfront's tests and benchmarks. */
#include <stdio.h>
#include <string.h>

int loadgen_kubelets_main(int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "kubelets") == 0)
        return loadgen_kubelets_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: loadgen kubelets ... (loadgen kubelets --help)\n");
    return 2;
}
