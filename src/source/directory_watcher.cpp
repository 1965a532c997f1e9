#include "source/directory_watcher.hpp"
