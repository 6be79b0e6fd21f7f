-- Writes the reference manual (nn.repl.reference(): every documented name of
-- nn, by family) to the file named by the first argument. The build runs it
-- (build/reference.md); `cmake --build build --target reference` copies that
-- over docs/reference.md, which tests/lua/reference_spec.lua keeps current.
--   nnlua tools/write_reference.lua build/reference.md
local nn = require "nn"
local path = assert(arg[1], "usage: nnlua tools/write_reference.lua OUTPUT.md")
local part = path .. ".part" -- written whole, then renamed: never half a manual
local f = assert(io.open(part, "wb"))
assert(f:write(nn.repl.reference()))
assert(f:close())
assert(os.rename(part, path))
