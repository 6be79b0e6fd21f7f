-- nn: the table `require "nn"` returns. The C core (tensors, autograd,
-- the math) comes in as "nn.core"; the Lua modules here compose it.
local C = require "nn.core"

--- nn: the deep learning engine, as `require "nn"` gives it (a global in nnlua).
-- Tensors (nn.tensor, nn.zeros...), autograd (t:backward(), nn.no_grad),
-- modules (nn.Linear, nn.Sequential, nn.Module:extend), losses, and the
-- namespaces nn.F, nn.init, nn.optim, nn.optim.lr_scheduler, nn.utils,
-- nn.data, nn.plot, nn.progress, nn.sweep. help(x) documents each.
--   local nn = require "nn"
--   local model = nn.Sequential(nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 1))
local nn = {_VERSION = "nnlua 0.1.0", _C = C}

-- Raises msg at the first caller outside nn's own modules, so that a
-- mistake is reported at the user's line, not at the library's.
function nn._raise(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info then return error(msg, 0) end
    if info.what ~= "C" and info.source:sub(1, 6) ~= "@[nn]/" then break end
    level = level + 1
  end
  error(msg, level)
end

-- Tensor creation and the generator, straight from C.
for _, name in ipairs {"tensor", "zeros", "ones", "empty", "full", "rand", "randn", "arange",
                       "linspace", "eye", "is_tensor", "manual_seed", "initial_seed",
                       "get_rng_state", "set_rng_state", "is_grad_enabled", "set_grad_enabled",
                       "clock", "set_num_threads", "get_num_threads"} do
  nn[name] = C[name]
end
nn.Tensor = C.tensor_methods -- methods added here reach every tensor

--- nn.cuda: the CUDA device (nn.cuda.is_available()).
nn.cuda = {
--- nn.cuda.is_available(): true when this build can run tensors on a CUDA GPU.
--   local device = nn.cuda.is_available() and "cuda" or "cpu"
  is_available = function() return C.cuda_is_available() end,
}

require "nn.autograd" (nn)
require "nn.functional" (nn)
require "nn.init_weights" (nn)
require "nn.module" (nn)
require "nn.layers" (nn)
require "nn.activations" (nn)
require "nn.norm_layers" (nn)
require "nn.loss" (nn)
require "nn.optim" (nn)
require "nn.lr_scheduler" (nn)
require "nn.data" (nn)
require "nn.serialize" (nn)

-- The tools around the engine load on first use (nn.plot, nn.progress,
-- nn.sweep): a script that never draws does not pay to compile the plotting
-- code.
local on_first_use = {plot = "nn.plot", progress = "nn.progress", sweep = "nn.sweep",
                      repl = "nn.repl", help = "nn.repl"}
setmetatable(nn, {__index = function(t, key)
  local name = on_first_use[key]
  if not name then return nil end
  on_first_use[key] = nil
  require(name)(nn)
  return rawget(t, key)
end})

return nn
