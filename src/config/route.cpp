#include "config/route.hpp"
