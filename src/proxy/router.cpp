#include "proxy/router.hpp"
