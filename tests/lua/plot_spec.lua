-- nn.plot: every kind of picture in every format, and each error a user can cause.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local expect_error = support.expect_error

local NNLUA = os.getenv("NNLUA")

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- The names in a directory, sorted.
local function listing(dir)
  local p = assert(io.popen("ls -A " .. quote(dir)))
  local names = {}
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return table.concat(names, "\n")
end

local function is_png(path)
  local bytes = read(path)
  return bytes ~= nil and #bytes > 100 and bytes:sub(1, 8) == "\137PNG\r\n\26\n"
end

local function is_svg(path)
  local text = read(path)
  if not text or #text == 0 then return false end
  return (text:sub(1, 5) == "<?xml" or text:sub(1, 4) == "<svg") and text:find("</svg>", 1, true) ~= nil
end


-- Runs Lua code in nnlua, in an 80x24 terminal's stead; returns its output and exit status.
local function nnlua(code)
  assert(NNLUA and NNLUA ~= "", "NNLUA is not set: ctest sets it (by hand: NNLUA=build/nnlua busted ...)")
  local p = assert(io.popen("COLUMNS=80 LINES=24 " .. quote(NNLUA) .. " -e " .. quote(code) .. " 2>&1"))
  local out = p:read("a")
  local _, _, code_ = p:close()
  return out, code_
end

local dir
local x = nn.linspace(-5, 5, 101)

setup(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. quote(dir)))
end)

teardown(function()
  nn.plot.gnuplot = "gnuplot"
  if dir then os.execute("rm -rf " .. quote(dir)) end
end)

describe("nn.plot.lines", function()
  it("writes a PNG and returns its path", function()
    local path = dir .. "/sigmoid.png"
    local result = nn.plot.lines{x = x, y = x:sigmoid(), label = "sigmoid", title = "Sigmoid",
                                 xlabel = "x", ylabel = "sigmoid(x)", out = path}
    assert.are.equal(path, result)
    assert.is_true(is_png(path))
  end)

  it("writes an SVG with a legend naming each series", function()
    local path = dir .. "/activations.svg"
    local result = nn.plot.lines{x = x, y = {
      {label = "sigmoid", y = x:sigmoid()},
      {label = "tanh", y = x:tanh()},
      {label = "relu", y = x:relu()},
    }, title = "Activations", out = path}
    assert.are.equal(path, result)
    assert.is_true(is_svg(path))
    local text = read(path)
    for _, name in ipairs {"sigmoid", "tanh", "relu", "Activations"} do
      assert.is_truthy(text:find(name, 1, true), name)
    end
  end)

  it("takes Lua lists, per-series x, and the default x = 1, 2, 3, ...", function()
    local path = dir .. "/lists.png"
    nn.plot.lines{y = {
      {label = "squares", x = {1, 2, 3, 4}, y = {1, 4, 9, 16}},
      {label = "default x", y = {2, 3, 5, 7, 11}},
    }, out = path}
    assert.is_true(is_png(path))
  end)

  it("takes (N, 1) tensors, as a model's output is shaped", function()
    local path = dir .. "/column.png"
    nn.plot.lines{x = x:view(101, 1), y = x:tanh():view(101, 1), out = path}
    assert.is_true(is_png(path))
  end)

  it("draws log scales, leaving out values a log axis cannot show", function()
    local path = dir .. "/log.png"
    nn.plot.lines{y = {
      {label = "sigmoid", y = {1e-6, 4e-6, 1.6e-5, 6.4e-5, 2.6e-4, 1e-3}},
      {label = "relu", y = {0.5, 0, 0.6, 0.7, 0.8, 0.9}},
    }, logy = true, ylabel = "gradient norm", out = path}
    assert.is_true(is_png(path))
    local svg = dir .. "/loglog.svg"
    nn.plot.lines{x = {1, 10, 100, 1000}, y = {1, 0.1, 0.01, 0.001}, logx = true, logy = true, out = svg}
    assert.is_true(is_svg(svg))
  end)

  it("accepts every style and legend place", function()
    for _, style in ipairs {"lines", "points", "linespoints"} do
      for _, legend in ipairs {"outside", "top left", "bottom right", "below", false} do
        local path = dir .. "/style.svg"
        nn.plot.lines{y = {3, 1, 2}, label = "y", style = style, legend = legend, out = path}
        assert.is_true(is_svg(path), style)
      end
    end
  end)

  it("keeps titles literally: quotes, backquotes and @ reach no shell and no macro", function()
    local marker = dir .. "/should-not-exist"
    local path = dir .. "/it's a `title`.svg"
    local title = "it's `touch " .. marker .. "` @x $(touch " .. marker .. ") x_1^2"
    local result = nn.plot.lines{y = {1, 2, 3}, title = title, xlabel = "line one\nline two", out = path}
    assert.are.equal(path, result)
    assert.is_true(is_svg(path))
    assert.is_nil(read(marker))
    local text = read(path)
    assert.is_truthy(text:find("touch", 1, true))
    assert.is_truthy(text:find("x_1^2", 1, true))
  end)

  it("overwrites an existing picture", function()
    local path = dir .. "/again.png"
    write(path, "old")
    nn.plot.lines{y = {1, 2}, out = path}
    assert.is_true(is_png(path))
  end)

  it("leaves no temporary file behind", function()
    local sub = dir .. "/clean"
    os.execute("mkdir " .. quote(sub))
    nn.plot.lines{y = {1, 2}, out = sub .. "/a.png"}
    nn.plot.lines{y = {1, 2}, out = sub .. "/b.svg"}
    pcall(nn.plot.lines, {y = {1, 2}, width = 1.5, out = sub .. "/c.png"})
    assert.are.equal("a.png\nb.svg", listing(sub))
  end)
end)

describe("nn.plot.scatter", function()
  nn.manual_seed(3)
  local points = nn.randn(60, 2)
  local px, py = points:select(2, 1), points:select(2, 2)
  local class = {}
  for i, v in ipairs(px:totable()) do class[i] = v > 0 and 2 or 1 end

  it("writes a PNG of points coloured by class", function()
    local path = dir .. "/scatter.png"
    assert.are.equal(path, nn.plot.scatter{x = px, y = py, class = class, labels = {"left", "right"},
                                           title = "Two classes", out = path})
    assert.is_true(is_png(path))
  end)

  it("writes an SVG naming the classes, and takes tensor classes", function()
    local path = dir .. "/scatter.svg"
    local labels = nn.tensor(class, {dtype = "int64"})
    nn.plot.scatter{x = px, y = py, class = labels, labels = {"left", "right"}, out = path}
    assert.is_true(is_svg(path))
    local text = read(path)
    assert.is_truthy(text:find("left", 1, true))
    assert.is_truthy(text:find("right", 1, true))
  end)

  it("draws a decision line over the points", function()
    local path = dir .. "/gate.svg"
    nn.plot.scatter{x = {0, 0, 1, 1}, y = {0, 1, 0, 1}, class = {1, 1, 1, 2}, labels = {"0", "1"},
                    lines = {x = {-0.5, 1.5}, y = {1.9, -0.1}, label = "decision line"},
                    xrange = {-0.5, 1.5}, yrange = {-0.5, 1.5}, title = "AND", out = path}
    assert.is_true(is_svg(path))
    assert.is_truthy(read(path):find("decision line", 1, true))
  end)

  it("draws points without classes, and on log axes", function()
    local path = dir .. "/plain.svg"
    nn.plot.scatter{x = {1, 2, 3}, y = {1, 10, 100}, logy = true, out = path}
    assert.is_true(is_svg(path))
  end)
end)

describe("nn.plot.heatmap", function()
  local n = 40
  local grid = nn.linspace(-2, 2, n):totable()
  local z = {}
  for i = 1, n do
    z[i] = {}
    for j = 1, n do z[i][j] = 1 / (1 + math.exp(-3 * grid[j] * grid[i])) end
  end

  it("writes decision regions with the data on top as a PNG", function()
    local path = dir .. "/regions.png"
    local result = nn.plot.heatmap{z = z, x = {-2, 2}, y = {-2, 2}, zrange = {0, 1}, zlabel = "P(class 2)",
      points = {x = {-1, 1, -1, 1}, y = {-1, 1, 1, -1}, class = {2, 2, 1, 1}, labels = {"odd", "even"}},
      title = "Decision regions", out = path}
    assert.are.equal(path, result)
    assert.is_true(is_png(path))
  end)

  it("draws lines over the regions", function()
    local path = dir .. "/boundary.png"
    nn.plot.heatmap{z = z, x = {-2, 2}, y = {-2, 2},
                    lines = {{x = {-2, 2}, y = {0, 0}, label = "x2 = 0"}, {x = {0, 0}, y = {-2, 2}}}, out = path}
    assert.is_true(is_png(path))
  end)

  it("writes an SVG from a 2-D tensor with given coordinates", function()
    local path = dir .. "/tensor.svg"
    nn.plot.heatmap{z = nn.tensor(z), x = nn.linspace(-2, 2, n), y = grid, palette = "viridis", out = path}
    assert.is_true(is_svg(path))
  end)

  it("draws class regions with the classes palette", function()
    local path = dir .. "/classes.png"
    local classes = {}
    for i = 1, n do
      classes[i] = {}
      for j = 1, n do classes[i][j] = (i + j) % 3 + 1 end
    end
    nn.plot.heatmap{z = classes, palette = "classes", out = path}
    assert.is_true(is_png(path))
  end)
end)

describe("nn.plot in the terminal", function()
  it("prints a text picture of lines with their legend", function()
    local out, code = nnlua([[
      local x = nn.linspace(-5, 5, 50)
      nn.plot.lines{x = x, y = {{label = "sigmoid", y = x:sigmoid()}, {label = "tanh", y = x:tanh()}},
                    title = "Activations", out = "term"}
    ]])
    assert.are.equal(0, code, out)
    assert.is_truthy(out:find("Activations", 1, true), out)
    assert.is_truthy(out:find("sigmoid", 1, true), out)
    assert.is_truthy(out:find("tanh", 1, true), out)
    local lines = select(2, out:gsub("\n", "\n"))
    assert.is_true(lines >= 15 and lines <= 30, out)
    for line in out:gmatch("[^\n]*") do assert.is_true(#line <= 80, line) end
  end)

  it("is the default, and follows COLUMNS and LINES", function()
    local out, code = nnlua([[nn.plot.lines{y = {1, 4, 9, 16}, logy = true}]])
    assert.are.equal(0, code, out)
    assert.is_true(#out > 100, out)
    assert.is_truthy(out:find("16", 1, true) or out:find("10", 1, true), out)
    local p = assert(io.popen("COLUMNS=50 LINES=15 " .. quote(NNLUA) .. " -e "
      .. quote("nn.plot.scatter{x = {1, 2, 3}, y = {3, 1, 2}, class = {1, 2, 1}}") .. " 2>&1"))
    local narrow = p:read("a")
    p:close()
    local count = 0
    for line in narrow:gmatch("([^\n]*)\n") do
      count = count + 1
      assert.is_true(#line <= 50, line)
    end
    assert.is_true(count <= 15 and count >= 8, narrow)
    assert.is_truthy(narrow:find("class 2", 1, true), narrow)
  end)

  it("prints a heat map as shaded characters", function()
    local out, code = nnlua([[
      local z = {}
      for i = 1, 20 do z[i] = {} for j = 1, 20 do z[i][j] = j / 20 end end
      nn.plot.heatmap{z = z, title = "Shades", points = {x = {5, 15}, y = {5, 15}, class = {1, 2}}}
    ]])
    assert.are.equal(0, code, out)
    assert.is_truthy(out:find("Shades", 1, true), out)
    assert.is_truthy(out:find("@", 1, true), out)
    assert.is_truthy(out:find("class 1", 1, true), out)
  end)
end)

-- The gnuplot script a call hands gnuplot: nn.plot.gnuplot is pointed at a
-- wrapper that keeps a copy of its script, then runs the real gnuplot.
local function captured(fn)
  local wrapper, copy = dir .. "/gnuplot-wrapper.sh", dir .. "/captured.gp"
  write(wrapper, "#!/bin/sh\ncp \"$1\" " .. quote(copy) .. "\nexec gnuplot \"$1\"\n")
  assert(os.execute("chmod +x " .. quote(wrapper)))
  os.remove(copy)
  nn.plot.gnuplot = wrapper
  local ok, err = pcall(fn)
  nn.plot.gnuplot = "gnuplot"
  assert(ok, err)
  return assert(read(copy), "gnuplot did not run")
end

-- The lines of the inline data block $name in a script.
local function datablock_lines(script, name)
  local body = script:match("%$" .. name .. " << EOD\n(.-)\nEOD")
  assert(body, "no data block $" .. name .. " in:\n" .. script)
  local lines = {}
  for line in (body .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

describe("nn.plot.histogram", function()
  it("counts values in bins of equal width, the last bin closed", function()
    local script = captured(function()
      assert.is_true(is_png(nn.plot.histogram{x = {1, 1, 2, 3, 0 / 0}, bins = 2, range = {1, 3},
                                              out = dir .. "/hist.png"}))
    end)
    assert.are.same({"1.5 2", "2.5 2"}, datablock_lines(script, "h1"))
    assert.is_truthy(script:find("with boxes", 1, true))
    assert.is_truthy(script:find("set ylabel 'count'", 1, true), script)
  end)

  it("takes a tensor of any shape, several series, and density", function()
    nn.manual_seed(3)
    local script = captured(function()
      nn.plot.histogram{x = {{label = "a", x = nn.randn(20, 30)}, {label = "b", x = nn.rand(600)}}, bins = 12,
                        density = true, title = "two", out = dir .. "/hist2.svg"}
    end)
    assert.is_true(is_svg(dir .. "/hist2.svg"))
    for _, block in ipairs {"h1", "h2"} do
      local lines = datablock_lines(script, block)
      assert.are.equal(12, #lines)
      local x1, x2 = tonumber(lines[1]:match("^(%S+)")), tonumber(lines[2]:match("^(%S+)"))
      local area = 0
      for _, line in ipairs(lines) do area = area + tonumber(line:match("(%S+)$")) * (x2 - x1) end
      assert.is_true(math.abs(area - 1) < 1e-6, block .. " has area " .. area)
    end
    assert.is_truthy(script:find("title 'a'", 1, true))
    assert.is_truthy(script:find("set ylabel 'density'", 1, true))
  end)

  it("refuses data without a finite value and bad bins", function()
    expect_error(function() nn.plot.histogram{x = {0 / 0, math.huge}, out = dir .. "/h.png"} end,
      "nn.plot.histogram: x has no finite value")
    expect_error(function() nn.plot.histogram{x = {1, 2}, bins = 0, out = dir .. "/h.png"} end,
      "nn.plot.histogram: bins must be a whole number")
    expect_error(function() nn.plot.histogram{out = dir .. "/h.png"} end, "nn.plot.histogram: x is required")
  end)
end)

describe("nn.plot.bar", function()
  it("names its categories on the x axis, a bar of each series side by side", function()
    local script = captured(function()
      assert.is_true(is_png(nn.plot.bar{y = {{label = "train", y = {0.9, 0.8, 0.95}},
                                             {label = "test", y = nn.tensor({0.85, 0.7, 0.9})}},
                                        categories = {"sigmoid", "tanh", "relu"}, out = dir .. "/bar.png"}))
    end)
    assert.is_truthy(script:find("set xtics ('sigmoid' 1, 'tanh' 2, 'relu' 3)", 1, true), script)
    assert.are.equal(3, #datablock_lines(script, "b1"))
    assert.are.equal(3, #datablock_lines(script, "b2"))
    assert.is_truthy(script:find("title 'train'", 1, true))
  end)

  it("refuses a wrong number of category names", function()
    expect_error(function() nn.plot.bar{y = {1, 2, 3}, categories = {"a", "b"}, out = dir .. "/b.png"} end,
      "nn.plot.bar: categories has 2 names but there are 3 bars")
  end)
end)

describe("nn.plot.image", function()
  -- an image whose rows and columns can be told apart: value 10 * row + column
  local function numbered(rows, columns)
    local t = nn.zeros(rows, columns)
    for i = 1, rows do for j = 1, columns do t[i][j] = 10 * i + j end end
    return t
  end

  it("draws H x W the right way up: row 1 at the top, with a colour bar", function()
    local script = captured(function()
      assert.is_true(is_png(nn.plot.image{image = numbered(3, 4), out = dir .. "/image.png"}))
    end)
    -- the y axis runs downward, so the data's first line (row 1) is the top
    assert.is_truthy(script:find("set yrange [2.5:-0.5]", 1, true), script)
    assert.is_truthy(script:find("set xrange [-0.5:3.5]", 1, true), script)
    assert.are.same({"11 12 13 14", "21 22 23 24", "31 32 33 34"}, datablock_lines(script, "image"))
    assert.is_truthy(script:find("matrix with image", 1, true))
    assert.is_truthy(script:find("set colorbox", 1, true))
    assert.is_truthy(script:find("set cbrange [11:34]", 1, true), script)
    assert.is_truthy(script:find("set size ratio -1", 1, true))
  end)

  it("draws C x H x W with 3 channels as colours, and 1 channel as gray", function()
    local rgb = nn.zeros(3, 2, 2)
    rgb[1][1][1], rgb[2][1][2], rgb[3][2][1] = 1, 1, 1 -- red, green, blue; the last pixel black
    local script = captured(function() nn.plot.image{image = rgb, out = dir .. "/rgb.png"} end)
    assert.are.same({"0 0 255 0 0", "1 0 0 255 0", "0 1 0 0 255", "1 1 0 0 0"}, datablock_lines(script, "image"))
    assert.is_truthy(script:find("with rgbimage", 1, true))
    assert.is_truthy(script:find("unset colorbox", 1, true))
    script = captured(function() nn.plot.image{image = numbered(2, 2):view(1, 2, 2), out = dir .. "/gray.png"} end)
    assert.are.same({"11 12", "21 22"}, datablock_lines(script, "image"))
  end)

  it("draws a batch N x C x H x W as a grid, each image captioned", function()
    local batch = nn.zeros(5, 1, 2, 3)
    for k = 1, 5 do batch[k]:fill_(k) end
    local script = captured(function()
      nn.plot.image{image = batch, columns = 3, labels = {"a", "b", "c", "d", "e"}, out = dir .. "/grid.png"}
    end)
    assert.is_true(is_png(dir .. "/grid.png"))
    local lines = datablock_lines(script, "image")
    -- two rows of images, each under room for its caption; images side by side, a gap between
    local first_row
    for _, line in ipairs(lines) do
      if line:find("1", 1, true) then first_row = line break end
    end
    assert.are.equal("1 1 1 NaN 2 2 2 NaN 3 3 3", first_row)
    for _, caption in ipairs {"a", "b", "c", "d", "e"} do
      assert.is_truthy(script:find("set label '" .. caption .. "' noenhanced at", 1, true), caption)
    end
    assert.is_truthy(script:find("unset xtics", 1, true))
  end)

  it("prints a text picture the right way up", function()
    -- the top row bright
    local out = nnlua('local t = nn.zeros(6, 8) t[1]:fill_(1) nn.plot.image{image = t, out = "term", height = 12}')
    local lines = {}
    for line in out:gmatch("[^\n]+") do if line:find("|", 1, true) then lines[#lines + 1] = line end end
    assert.is_true(#lines >= 4, out)
    assert.is_truthy(lines[1]:find("@", 1, true), out) -- the bright row is the first drawn
    assert.is_falsy(lines[#lines]:find("@", 1, true), out)
  end)

  it("refuses shapes that are not images", function()
    expect_error(function() nn.plot.image{image = nn.zeros(2, 4, 4), out = dir .. "/i.png"} end,
      "nn.plot.image: an image has 1 channel (gray) or 3", "N x 1 x H x W")
    expect_error(function() nn.plot.image{image = nn.zeros(4), out = dir .. "/i.png"} end,
      "nn.plot.image: image must be H x W")
    expect_error(function() nn.plot.image{image = nn.zeros(2, 1, 3, 3), labels = {"one"}, out = dir .. "/i.png"} end,
      "nn.plot.image: labels must be a list of 2 captions")
  end)
end)

describe("nn.plot.panels", function()
  it("draws several plots of every kind in one picture", function()
    local script = captured(function()
      assert.is_true(is_png(nn.plot.panels{columns = 3, title = "all kinds", out = dir .. "/panels.png",
        {kind = "lines", y = {1, 2, 3}, title = "lines"},
        {kind = "scatter", x = {1, 2}, y = {2, 1}, title = "scatter"},
        {kind = "heatmap", z = {{1, 2}, {3, 4}}, title = "heatmap"},
        {kind = "histogram", x = {1, 2, 2, 3}, title = "histogram"},
        {kind = "bar", y = {1, 2}, categories = {"x", "y"}, title = "bar"},
        {kind = "image", image = nn.eye(4), title = "image"}}))
    end)
    assert.is_truthy(script:find("set multiplot layout 2,3 title 'all kinds'", 1, true), script)
    local plots = select(2, script:gsub("\nplot ", ""))
    assert.are.equal(6, plots)
    for _, title in ipairs {"lines", "scatter", "heatmap", "histogram", "bar", "image"} do
      assert.is_truthy(script:find("set title '" .. title .. "'", 1, true), title)
    end
    assert.is_truthy(script:find("unset multiplot", 1, true))
  end)

  it("prints panels in the terminal", function()
    local out = nnlua('nn.plot.panels{{kind = "lines", y = {1, 2, 3}, title = "up"}, '
      .. '{kind = "bar", y = {3, 1}, categories = {"left", "right"}, title = "bars"}}')
    assert.is_truthy(out:find("up", 1, true), out)
    assert.is_truthy(out:find("right", 1, true), out)
  end)

  it("refuses a picture's options inside a plot, and unknown kinds", function()
    expect_error(function() nn.plot.panels{{kind = "lines", y = {1, 2}, out = "x.png"}} end,
      "nn.plot.panels: plot 1: out belongs to the whole picture")
    expect_error(function() nn.plot.panels{{kind = "pie", y = {1, 2}}} end,
      "nn.plot.panels: plot 1: kind must be")
    expect_error(function() nn.plot.panels{out = dir .. "/p.png"} end, "nn.plot.panels: no plots")
    expect_error(function() nn.plot.panels{{kind = "lines"}, out = dir .. "/p.png"} end,
      "nn.plot.panels: plot 1 (lines): y is required")
  end)
end)

describe("nn.plot's categories and many series", function()
  it("names category values on the x axis", function()
    local script = captured(function()
      nn.plot.scatter{x = {1, 2, 2, 3}, y = {4, 3, 5, 1}, xcategories = {"sigmoid", "tanh", "relu"},
                      out = dir .. "/categories.png"}
    end)
    assert.is_truthy(script:find("set xtics ('sigmoid' 1, 'tanh' 2, 'relu' 3)", 1, true), script)
  end)

  it("tells 15 series apart: no two share both colour and dash pattern", function()
    local series = {}
    for i = 1, 15 do series[i] = {label = "s" .. i, y = {i, i + 1, i + 2}} end
    local script = captured(function() nn.plot.lines{y = series, style = "lines", out = dir .. "/many.png"} end)
    local seen, count = {}, 0
    for colour, dash in script:gmatch("dashtype (%d+)[^\n]-linecolor rgb '(#%x+)'") do
      local key = colour .. "/" .. dash
      assert.is_nil(seen[key], "two series drawn as " .. key)
      seen[key] = true
      count = count + 1
    end
    assert.are.equal(15, count, script)
    -- text has no dashes and 8 line characters: each series gets a letter of its own
    script = captured(function() nn.plot.lines{y = series, out = "term", width = 60, height = 12} end)
    local letters = {}
    for letter in script:gmatch("pointtype '(%a)'") do
      assert.is_nil(letters[letter], "two series marked " .. letter)
      letters[letter] = true
    end
    assert.are.equal(15, select(2, script:gsub("pointtype '%a'", "")))
  end)
end)

describe("nn.plot errors", function()
  it("names a missing gnuplot", function()
    nn.plot.gnuplot = "/nonexistent/gnuplot"
    local ok, err = pcall(nn.plot.lines, {y = {1, 2}, out = dir .. "/never.png"})
    nn.plot.gnuplot = "gnuplot"
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("nn.plot.lines: gnuplot not found", 1, true), err)
    assert.is_truthy(tostring(err):find("/nonexistent/gnuplot", 1, true), err)
    assert.is_nil(read(dir .. "/never.png"))
  end)

  it("names an unwritable path", function()
    expect_error(function() nn.plot.lines{y = {1, 2}, out = "/nonexistent-dir/x.png"} end,
      "nn.plot.lines", "cannot write", "/nonexistent-dir/x.png", "No such file or directory")
    expect_error(function() nn.plot.scatter{x = {1}, y = {2}, out = dir .. "/"} end,
      "nn.plot.scatter", "cannot write")
  end)

  it("names a directory given as the picture", function()
    os.execute("mkdir " .. quote(dir .. "/folder.png"))
    expect_error(function() nn.plot.lines{y = {1, 2}, out = dir .. "/folder.png"} end,
      "nn.plot.lines", "cannot write", "folder.png")
    assert.are.equal("", listing(dir .. "/folder.png"))
  end)

  it("names data of mismatched lengths", function()
    expect_error(function() nn.plot.lines{x = {1, 2, 3}, y = {1, 2, 3, 4}, out = dir .. "/m.png"} end,
      "nn.plot.lines", "x has 3 values but y has 4")
    expect_error(function() nn.plot.lines{y = {{label = "a", x = {1, 2}, y = {1, 2, 3}}}, out = dir .. "/m.png"} end,
      "nn.plot.lines", "x", "2 values", "3")
    expect_error(function() nn.plot.scatter{x = {1, 2}, y = {1, 2}, class = {1}, out = dir .. "/m.png"} end,
      "nn.plot.scatter", "class has 1 values but x has 2")
    expect_error(function() nn.plot.heatmap{z = {{1, 2}, {3}}, out = dir .. "/m.png"} end,
      "nn.plot.heatmap", "z[2] has 1 values but z[1] has 2")
    expect_error(function() nn.plot.heatmap{z = {{1, 2, 3}}, x = {1, 2, 3, 4}, out = dir .. "/m.png"} end,
      "nn.plot.heatmap", "x has 4 values")
  end)

  it("names empty data", function()
    expect_error(function() nn.plot.lines{y = {}, out = dir .. "/e.png"} end, "nn.plot.lines", "y is empty")
    expect_error(function() nn.plot.lines{y = nn.zeros(0), out = dir .. "/e.png"} end, "nn.plot.lines", "empty")
    expect_error(function() nn.plot.scatter{x = {}, y = {}, out = dir .. "/e.png"} end, "nn.plot.scatter", "empty")
    expect_error(function() nn.plot.heatmap{z = {}, out = dir .. "/e.png"} end, "nn.plot.heatmap", "z")
    expect_error(function() nn.plot.lines{out = dir .. "/e.png"} end, "nn.plot.lines", "y is required")
  end)

  it("names an unknown output type", function()
    expect_error(function() nn.plot.lines{y = {1, 2}, out = dir .. "/x.jpg"} end,
      "nn.plot.lines", "unknown picture type '.jpg'")
    expect_error(function() nn.plot.lines{y = {1, 2}, out = dir .. "/noext"} end,
      "nn.plot.lines", "unknown picture type")
    expect_error(function() nn.plot.lines{y = {1, 2}, out = 3} end, "nn.plot.lines", "out must be")
    assert.is_nil(read(dir .. "/x.jpg"))
  end)

  it("names bad values and options", function()
    expect_error(function() nn.plot.lines{y = {1, "two"}, out = dir .. "/b.png"} end,
      "nn.plot.lines", "y[2] is a string, not a number")
    expect_error(function() nn.plot.lines{y = nn.ones(2, 3), out = dir .. "/b.png"} end,
      "nn.plot.lines", "vector", "(2, 3)")
    expect_error(function() nn.plot.lines{y = {1, 2}, style = "bars", out = dir .. "/b.png"} end,
      "nn.plot.lines", "style")
    expect_error(function() nn.plot.lines{y = {1, 2}, legend = "middle", out = dir .. "/b.png"} end,
      "nn.plot.lines", "legend")
    expect_error(function() nn.plot.lines{y = {1, 2}, yrange = {1, 0}, out = dir .. "/b.png"} end,
      "nn.plot.lines", "yrange")
    expect_error(function() nn.plot.lines{y = {0, -1}, logy = true, out = dir .. "/b.png"} end,
      "nn.plot.lines", "logy needs positive y values")
    expect_error(function() nn.plot.lines{y = {1, 2}, width = 0, out = dir .. "/b.png"} end,
      "nn.plot.lines", "width")
    expect_error(function() nn.plot.lines("y") end, "nn.plot.lines", "table of options")
    expect_error(function() nn.plot.scatter{x = {1, 2}, y = {1, 2}, class = {1, 2.5}, out = dir .. "/b.png"} end,
      "nn.plot.scatter", "class[2] is 2.5")
    expect_error(function() nn.plot.scatter{x = {1, 2}, y = {1, 2}, class = {1, 2}, labels = {"one"},
                                            out = dir .. "/b.png"} end,
      "nn.plot.scatter", "no name for class 2")
    expect_error(function() nn.plot.scatter{x = {1}, y = {1}, lines = {1, 2}, out = dir .. "/b.png"} end,
      "nn.plot.scatter", "lines must be")
    expect_error(function() nn.plot.scatter{x = {1}, y = {1}, lines = {x = {1, 2}, y = {1}}, out = dir .. "/b.png"} end,
      "nn.plot.scatter", "lines.x has 2 values but lines.y has 1")
    expect_error(function() nn.plot.heatmap{z = {{1, 2}}, palette = "rainbow", out = dir .. "/b.png"} end,
      "nn.plot.heatmap", "palette")
    expect_error(function() nn.plot.heatmap{z = {{1, 2, 3}}, x = {1, 2, 10}, out = dir .. "/b.png"} end,
      "nn.plot.heatmap", "x must be evenly spaced")
    expect_error(function() nn.plot.heatmap{z = nn.ones(3), out = dir .. "/b.png"} end,
      "nn.plot.heatmap", "2-D")
    assert.is_nil(read(dir .. "/b.png"))
  end)

  it("leaves neither half a picture nor a temporary file when gnuplot fails", function()
    local sub = dir .. "/failing"
    os.execute("mkdir " .. quote(sub))
    write(sub .. "/keep.png", "the old picture")
    nn.plot.gnuplot = "false" -- runs, and exits with status 1
    local ok, err = pcall(nn.plot.lines, {y = {1, 2}, out = sub .. "/keep.png"})
    nn.plot.gnuplot = "true" -- runs, succeeds, and writes nothing
    local ok2, err2 = pcall(nn.plot.lines, {y = {1, 2}, out = sub .. "/new.svg"})
    nn.plot.gnuplot = "gnuplot"
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("nn.plot.lines: gnuplot failed", 1, true), err)
    assert.is_false(ok2)
    assert.is_truthy(tostring(err2):find("nn.plot.lines: gnuplot wrote no picture", 1, true), err2)
    assert.are.equal("keep.png", listing(sub))
    assert.are.equal("the old picture", read(sub .. "/keep.png"))
  end)

  it("reports errors at the caller's line", function()
    local ok, err = pcall(function() nn.plot.lines{y = {}, out = "x.png"} end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("plot_spec.lua:%d+: nn.plot.lines"), err)
  end)
end)
