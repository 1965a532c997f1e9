#include "metrics/registry.hpp"
