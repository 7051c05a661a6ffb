#include "proxy/proxy.h"

int main(int argc, char **argv)
{
    return px_main(argc, argv);
}
