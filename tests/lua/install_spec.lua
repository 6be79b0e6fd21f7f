-- `cmake --install` into a temporary prefix, then what each kind of user
-- does with it: a C program built against libnn with pkg-config (the
-- README's example, examples/gradient.c), and a stock lua5.4 loading the
-- installed nn.so.
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local ROOT = os.getenv("NN_ROOT") or "."
local BUILD = assert(os.getenv("NN_BUILD"), "NN_BUILD must name the build directory (ctest sets it)")

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

describe("an install into a temporary prefix", function()
  local prefix

  setup(function()
    prefix = support.scratch_dir()
    local out, code = run("cmake --install " .. quote(BUILD) .. " --prefix " .. quote(prefix))
    assert(code == 0, "cmake --install failed:\n" .. out)
  end)
  teardown(function() if prefix then os.execute("rm -rf " .. quote(prefix)) end end)

  it("holds nn.h, libnn and nnlua.pc beside nnlua and nn.so", function()
    for _, path in ipairs {"include/nn.h", "lib/libnn.so", "lib/libnn.so.0", "lib/pkgconfig/nnlua.pc",
                           "bin/nnlua", "lib/lua/5.4/nn.so"} do
      assert.truthy(support.read(prefix .. "/" .. path), path .. " is not installed")
    end
  end)

  it("builds and runs the README's C example with pkg-config's flags", function()
    local env = "PKG_CONFIG_PATH=" .. quote(prefix .. "/lib/pkgconfig")
    local flags, code = run(env .. " pkg-config --cflags --libs nnlua")
    assert.are.equal(0, code, flags)
    assert.truthy(flags:find("-lnn", 1, true), flags)
    local program = prefix .. "/gradient"
    local out
    out, code = run(string.format("cc -std=c11 -Wall -Wextra -Werror %s %s -o %s", quote(ROOT .. "/examples/gradient.c"),
                                  flags:gsub("\n", ""), quote(program)))
    assert.are.equal(0, code, out)
    out, code = run("LD_LIBRARY_PATH=" .. quote(prefix .. "/lib") .. " " .. quote(program))
    assert.are.equal(0, code, out)
    assert.truthy(out:find("loss = 13.5\n", 1, true), out)
    assert.truthy(out:find("d loss / d x = 3 3 3 3 3 3\n", 1, true), out)
    assert.truthy(out:find("as expected, an error: matmul:", 1, true), out)
  end)

  it("gives a stock lua5.4 the installed nn", function()
    local lua = os.getenv("NN_LUA") or "lua5.4"
    local out, code = run(quote(lua) .. " -e " .. quote("package.cpath = " .. string.format("%q", prefix .. "/lib/lua/5.4/?.so")
      .. " .. ';' .. package.cpath; local nn = require 'nn'; print(nn.ones(2, 2):sum():item())"))
    assert.are.equal(0, code, out)
    assert.are.equal("4.0\n", out)
  end)
end)
