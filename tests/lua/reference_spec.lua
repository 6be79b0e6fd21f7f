-- docs/reference.md: the reference manual the build writes from the
-- documentation comments (nn.repl.reference()), committed. It must be what
-- the comments of this tree give; the build's copy must agree too.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local ROOT = os.getenv("NN_ROOT") or "."
local BUILD = os.getenv("NN_BUILD") or "build"

local HOW = "docs/reference.md is stale: regenerate it with `cmake --build build --target reference` "
  .. "(which copies build/reference.md, written from the comments in lua/, over it) and commit it"

-- The first line where two texts differ, for the message.
local function first_difference(a, b)
  local la, lb = {}, {}
  for line in (a .. "\n"):gmatch("([^\n]*)\n") do la[#la + 1] = line end
  for line in (b .. "\n"):gmatch("([^\n]*)\n") do lb[#lb + 1] = line end
  for i = 1, math.max(#la, #lb) do
    if la[i] ~= lb[i] then
      return string.format("line %d:\n  committed: %s\n  generated: %s", i, tostring(la[i]), tostring(lb[i]))
    end
  end
  return "no line differs"
end

describe("docs/reference.md", function()
  it("is what the documentation comments give today", function()
    local committed = support.read(ROOT .. "/docs/reference.md")
    assert(committed, "docs/reference.md is missing: " .. HOW)
    local generated = nn.repl.reference()
    if committed ~= generated then
      error(HOW .. "\nfirst difference, " .. first_difference(committed, generated), 0)
    end
  end)

  it("is the file the build writes", function()
    local built = support.read(BUILD .. "/reference.md")
    assert(built, BUILD .. "/reference.md is missing: the build writes it (target reference_manual)")
    assert.are.equal(nn.repl.reference(), built)
  end)

  it("documents every public name, each under its family", function()
    local text = nn.repl.reference()
    for _, title in ipairs {"## Tensors", "## Autograd", "## Modules and layers", "## Losses", "## Optimizers",
                            "## Pictures", "## Sweeps", "## Saving and loading"} do
      assert.truthy(text:find("\n" .. title .. "\n", 1, true), title)
    end
    for _, name in ipairs {"nn.Linear", "Tensor:add", "DataLoader:set_epoch", "nn.plot.image", "nn.sweep"} do
      assert.truthy(text:find("\n### [^\n]*" .. name:gsub("%p", "%%%0") .. "%f[^%w_]"), name)
    end
  end)
end)
