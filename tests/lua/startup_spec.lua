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

  -- lua5.4 opens nn.so with RTLD_NOW: each library it needs is mapped,
  -- relocated and bound before luaopen_nn runs. OpenBLAS and zlib are
  -- opened at first use instead (engine/src/cpu/openblas_loader.c,
  -- engine/src/zlib_loader.c), so nn.so needs only what lua5.4 has loaded.
  it("needs no library that lua5.4 has not loaded already", function()
    local p = assert(io.popen("readelf -d '" .. build .. "/nn.so' 2>&1"))
    local needed = {}
    for line in p:lines() do
      local name = line:match("%(NEEDED%)%s+Shared library: %[(.-)%]")
      if name then needed[#needed + 1] = name end
    end
    p:close()
    assert.is_true(#needed > 0, "readelf listed no library")
    for _, name in ipairs(needed) do
      assert.truthy(name:match("^libc%.so") or name:match("^libm%.so") or name:match("^libdl%.so")
        or name:match("^libpthread%.so") or name:match("^ld%-linux")
        -- a sanitizer build's runtimes (NN_SANITIZE), which the process preloads
        or name:match("^libasan%.so") or name:match("^libubsan%.so"), "nn.so needs " .. name)
    end
  end)

  it("reads a gzip'd file, opening zlib then", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    -- an idx file of one uint8 vector {1, 2, 3}, gzip'd by the gzip tool
    f:write("\0\0\8\1\0\0\0\3\1\2\3")
    f:close()
    assert.is_true(os.execute("gzip -f '" .. path .. "'"))
    local cmd = string.format("lua5.4 -e \"package.cpath='%s/?.so;'..package.cpath "
      .. "local nn = require 'nn' print(table.concat(nn.data.idx('%s.gz'):totable(), ' '))\" 2>&1", build, path)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    os.remove(path .. ".gz")
    assert.are.equal("1 2 3\n", out)
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
