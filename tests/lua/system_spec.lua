-- The C functions behind nn.data, nn.save/nn.load and nn.sweep (lua/nn_data.c,
-- lua/nn_system.c), called the wrong way from Lua: each raises an error
-- that names what was wrong, and none crashes, whatever it is handed.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local expect_error = support.expect_error
local C = nn._C

describe("the C functions of nn_data.c and nn_system.c", function()
  -- Those that act on the process when given what they accept (fork, exit,
  -- redirect stdout, start MPI): each still checks its arguments, but a
  -- wrong call here could succeed in a way that ends this spec.
  local acts_on_process = {sys_fork = true, sys_exit = true, mpi_init = true, mpi_finalize = true}
  local ours = {"^data_", "^sys_", "^mpi_", "^safetensors_", "^write_file_atomic$"}

  local function is_ours(name)
    for _, pattern in ipairs(ours) do
      if name:find(pattern) then return true end
    end
    return false
  end

  it("refuse arguments of the wrong type", function()
    local wrong = {{}, true, print, coroutine.create(print), nn.ones(1)}
    local tried = 0
    for name, fn in pairs(C) do
      if type(fn) == "function" and is_ours(name) and not acts_on_process[name] then
        for _, v in ipairs(wrong) do
          -- the same wrong value in every position: nothing can be taken as
          -- a file, a number or a string
          local ok, err = pcall(fn, v, v, v, v, v)
          if not ok then
            assert.is_string(err, name)
          end
          tried = tried + 1
        end
      end
    end
    assert.is_true(tried >= 5 * 20, "only " .. tried .. " calls: are the functions still in nn._C?")
  end)

  it("a GatherJob's __gc refuses what is not a GatherJob, and a finished job is not finished twice", function()
    local x = nn.randn(8, 3)
    local rows = nn.arange(0, 8, {dtype = "int64"})
    local job = C.data_gather_start(x, rows, 1, 4)
    local gc = getmetatable(job).__gc
    expect_error(function() gc(42) end, "GatherJob expected, got number")
    expect_error(function() gc({}) end, "GatherJob expected, got table")
    expect_error(function() gc() end, "GatherJob expected, got no value")
    local batch = C.data_gather_finish(job)
    assert.are.same(x:narrow(1, 1, 4):totable(), batch:totable())
    gc(job) -- finished: nothing left to do
    expect_error(function() C.data_gather_finish(job) end, "DataLoader: this batch was already taken")
    local dropped = C.data_gather_start(x, rows, 5, 4)
    gc(dropped) -- as the collector does with a job a loop left behind
    expect_error(function() C.data_gather_finish(dropped) end, "already taken")
    expect_error(function() C.data_gather_finish(42) end, "GatherJob expected")
  end)

  it("the module's own finaliser refuses what is not its own", function()
    local holder = debug.getregistry()["nn.lifetime"]
    assert.is_userdata(holder)
    assert.is_false(getmetatable(holder)) -- not for scripts to call
    local gc = debug.getmetatable(holder).__gc
    expect_error(function() gc(42) end, "expected, got number")
    expect_error(function() gc(nn.ones(1)) end, "expected")
  end)

  it("a batch's first row and count are checked before any arithmetic", function()
    local x = nn.randn(4, 2)
    local rows = nn.arange(0, 4, {dtype = "int64"})
    for _, gather in ipairs {C.data_gather, C.data_gather_start} do
      expect_error(function() gather(x, rows, math.mininteger, 1) end,
                   "DataLoader: the first row of a batch must be 1 or more")
      expect_error(function() gather(x, rows, 0, 1) end, "must be 1 or more, got 0")
      expect_error(function() gather(x, rows, 1, -1) end, "DataLoader: a batch cannot have -1 rows")
      expect_error(function() gather(x, rows, 2, math.maxinteger) end, "outside the 4 indices")
      expect_error(function() gather(x, rows, math.maxinteger, 1) end, "outside the 4 indices")
    end
    expect_error(function() C.data_gather_reuse(nil, x, rows, math.mininteger, 1) end, "must be 1 or more")
  end)

  it("sys_kill and sys_waitpid take only process (or group) ids", function()
    -- 0 is this process's group and -1 every process: never what is meant
    expect_error(function() C.sys_kill(0, "KILL") end, "not a process or process group id")
    expect_error(function() C.sys_kill(-1, "KILL") end, "not a process or process group id")
    expect_error(function() C.sys_kill(1 << 32, "KILL") end, "not a process or process group id")
    expect_error(function() C.sys_kill(-(1 << 32), "KILL") end, "not a process or process group id")
    expect_error(function() C.sys_kill(math.mininteger, "KILL") end, "not a process or process group id")
    expect_error(function() C.sys_kill(C.sys_getpid(), 1 << 40) end, "not a signal number")
    expect_error(function() C.sys_kill(C.sys_getpid(), "NOSUCH") end, "unknown signal name")
    assert.is_true(C.sys_kill(C.sys_getpid(), 0)) -- signal 0: is it there?
    expect_error(function() C.sys_waitpid(-1) end, "not a process id")
    expect_error(function() C.sys_waitpid(0) end, "not a process id")
    expect_error(function() C.sys_waitpid((1 << 32) + C.sys_getpid()) end, "not a process id")
  end)

  it("a sys_fork with its own group makes the child lead a process group", function()
    local r, w = C.sys_pipe()
    local pid = C.sys_fork(true)
    if pid == 0 then
      C.sys_close(r)
      -- /proc/self/stat: pid (comm) state ppid pgrp ...
      local f = io.open("/proc/self/stat", "rb")
      local pgrp = f and f:read("a"):match("%) %a+ %d+ (%d+)")
      C.sys_write(w, tostring(pgrp) .. "\n")
      C.sys_exit(0)
    end
    C.sys_close(w)
    local text = ""
    while true do
      local ready = C.sys_poll({r}, 10)
      if #ready == 0 then break end
      local data = C.sys_read(r)
      if not data or data == "" then break end
      text = text .. data
    end
    C.sys_close(r)
    assert.are.equal("exit", (C.sys_waitpid(pid, true)))
    assert.are.equal(tostring(pid), text:match("%d+"))
  end)
end)
