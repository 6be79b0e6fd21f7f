-- LuaRocks' description of nnlua: `luarocks make` (in this directory) builds
-- it with CMake and installs the module nn (nn.so, with the Lua parts and
-- the documentation inside) and the nnlua interpreter into a rocks tree.
--   luarocks --lua-version 5.4 make --tree ~/.luarocks
--   lua5.4 -e 'package.cpath = os.getenv("HOME") .. "/.luarocks/lib/lua/5.4/?.so;" .. package.cpath' \
--          -e 'print(require("nn").ones(2, 3))'
-- It needs what tools/setup.sh installs from Debian (a C compiler, CMake,
-- Lua 5.4's headers, OpenBLAS, zlib). lua-cjson (nn.sweep's files) and
-- argparse (nn.cli, the scripts' options) are its Lua dependencies; where
-- Debian's lua-cjson and lua-argparse are installed, add --deps-mode none
-- and nothing is fetched.
rockspec_format = "3.0"
package = "nnlua"
version = "scm-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "A deep learning engine in C, scripted from Lua 5.4, the way Torch7 was",
  detailed = [[
    Tensors, autograd, layers, losses, optimizers, data loading, pictures
    (gnuplot) and hyperparameter sweeps, with PyTorch's names and 1-based
    indices. `local nn = require "nn"`; help(x) documents everything.
  ]],
  labels = {"deep learning", "neural networks", "tensor", "autograd"},
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson >= 2.1",
  "argparse >= 0.7",
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    -- LuaRocks deploys the rock's lib/ (here: nn.so) to the tree's lib/lua/5.4
    NN_INSTALL_LUA_CMOD = "lib",
    NN_INSTALL_C_LIBRARY = "OFF",
    NN_TESTS = "OFF",
  },
}
