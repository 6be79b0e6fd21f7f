-- What keeps start-up short (scripts/bench/startup.lua measures it): nn.so
-- shows its loader luaopen_nn alone (cmake/nn_module.map), so that
-- require "nn" binds none of the engine's names by lookup; tests/lua/
-- lazy_spec.lua checks what loads with nn and what waits for first use.
local build = assert(os.getenv("NN_BUILD"), "NN_BUILD must name the build folder")

local function dynamic_symbols(path)
  local p = assert(io.popen("nm -D --defined-only '" .. path .. "' 2>&1"))
  local names = {}
  for line in p:lines() do
    local name = line:match("^%x*%s+%a%s+(%S+)$")
    if name then names[#names + 1] = name end
  end
  p:close()
  return names
end

describe("nn.so", function()
  it("exports luaopen_nn and nothing else", function()
    local names = dynamic_symbols(build .. "/nn.so")
    assert.are.same({"luaopen_nn"}, names)
  end)

  it("loads under the stock lua5.4 and works", function()
    local cmd = string.format("lua5.4 -e \"package.cpath='%s/?.so;'..package.cpath "
      .. "local nn = require 'nn' print((nn.ones(2, 3):matmul(nn.ones(3, 1)):sum():item()))\" 2>&1", build)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    assert.are.equal("6.0\n", out)
  end)
end)
