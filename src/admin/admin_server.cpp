#include "admin/admin_server.hpp"
