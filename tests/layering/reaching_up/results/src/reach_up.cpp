// A results source that reaches up into the host: scripts/check_layers.sh must refuse it.
#include "msd/host/config.h"
