-- steercode for Neovim: inline suggestions (ghost text) from `steercode serve`.
--
-- Neovim >= 0.12 has native inline completion (vim.lsp.inline_completion): setup() turns it on.
-- On 0.11 this module shows the suggestion itself: it asks textDocument/inlineCompletion as you
-- type (debounced; a new keystroke cancels the request in flight with $/cancelRequest), draws
-- the answer as an extmark (virtual text), and maps keys to accept it whole, word by word or
-- line by line, or to dismiss it. textDocument/completion (the popup) works everywhere.
--
-- Setup (see README):
--   vim.lsp.config('steercode', { cmd = { 'steercode', 'serve' }, filetypes = { 'python' } })
--   vim.lsp.enable('steercode')
--   require('steercode').setup()

local M = {}

M.config = {
  debounce_ms = 60,
  keymaps = {
    accept = "<Tab>", -- falls back to a real <Tab> when nothing is shown
    accept_word = "<M-Right>",
    accept_line = "<M-Down>",
    dismiss = "<C-]>",
  },
  hl_group = "Comment",
  native = true, -- use vim.lsp.inline_completion on Neovim >= 0.12
}

local ns = vim.api.nvim_create_namespace("steercode")
local state = {} -- bufnr -> { timer, client, request_id, item = { text, row, col } }

local function buf_state(buf)
  state[buf] = state[buf] or {}
  return state[buf]
end

local function client_for(buf)
  for _, c in ipairs(vim.lsp.get_clients({ bufnr = buf })) do
    local caps = c.server_capabilities or {}
    if caps.inlineCompletionProvider or c.name == "steercode" then
      return c
    end
  end
end

--- Remove the ghost text (and forget the suggestion).
function M.clear(buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1)
  buf_state(buf).item = nil
end

local function cancel(buf)
  local s = buf_state(buf)
  if s.request_id and s.client then
    pcall(function()
      s.client:cancel_request(s.request_id)
    end)
  end
  s.request_id = nil
end

--- The suggestion shown in `buf`, if any: { text = ..., row = ..., col = ... } (0-based).
function M.current(buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  return buf_state(buf).item
end

local function show(buf, text, row, col)
  M.clear(buf)
  if text == nil or text == "" then
    return
  end
  local lines = vim.split(text, "\n", { plain = true })
  local virt_lines = {}
  for i = 2, #lines do
    table.insert(virt_lines, { { lines[i], M.config.hl_group } })
  end
  vim.api.nvim_buf_set_extmark(buf, ns, row, col, {
    virt_text = { { lines[1], M.config.hl_group } },
    virt_text_pos = "inline",
    virt_lines = (#virt_lines > 0) and virt_lines or nil,
    hl_mode = "combine",
  })
  buf_state(buf).item = { text = text, row = row, col = col }
end

local function utf_index(line, col_bytes, encoding)
  -- LSP column (in the client's encoding) -> byte column, for the cursor line
  return vim.str_byteindex(line, encoding or "utf-16", col_bytes, false)
end

--- Ask the server for a suggestion at the cursor now.
function M.request(buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  local client = client_for(buf)
  if not client then
    return
  end
  cancel(buf)
  local win = vim.api.nvim_get_current_win()
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding)
  params.context = { triggerKind = 2 } -- Automatic
  local cursor = vim.api.nvim_win_get_cursor(win)
  local row, col = cursor[1] - 1, cursor[2]
  local tick = vim.api.nvim_buf_get_changedtick(buf)
  local s = buf_state(buf)
  s.client = client
  local ok, id = client:request("textDocument/inlineCompletion", params, function(err, result)
    s.request_id = nil
    if err or not result then
      return
    end
    if vim.api.nvim_buf_get_changedtick(buf) ~= tick then
      return -- the text changed meanwhile: this answer is stale
    end
    local items = result.items or result
    local item = items and items[1]
    if not item then
      M.clear(buf)
      return
    end
    local text = item.insertText
    if type(text) == "table" then
      text = text.value
    end
    -- a range that starts before the cursor repeats what is typed: show only the rest
    if item.range and item.range.start.line == row then
      local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
      local start_byte = utf_index(line, item.range.start.character, client.offset_encoding)
      local typed = line:sub(start_byte + 1, col)
      if vim.startswith(text, typed) then
        text = text:sub(#typed + 1)
      end
    end
    vim.schedule(function()
      if vim.api.nvim_buf_is_valid(buf) and vim.api.nvim_buf_get_changedtick(buf) == tick then
        show(buf, text, row, col)
      end
    end)
  end, buf)
  if ok then
    s.request_id = id
  end
end

local function schedule_request(buf)
  local s = buf_state(buf)
  M.clear(buf)
  cancel(buf)
  if s.timer then
    s.timer:stop()
  else
    s.timer = vim.uv.new_timer()
  end
  s.timer:start(M.config.debounce_ms, 0, vim.schedule_wrap(function()
    if vim.api.nvim_buf_is_valid(buf) and vim.api.nvim_get_mode().mode:sub(1, 1) == "i" then
      M.request(buf)
    end
  end))
end

local function insert(buf, item, text)
  local row, col = item.row, item.col
  local lines = vim.split(text, "\n", { plain = true })
  vim.api.nvim_buf_set_text(buf, row, col, row, col, lines)
  local last_row = row + #lines - 1
  local last_col = (#lines == 1) and (col + #lines[1]) or #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { last_row + 1, last_col })
end

--- Accept the suggestion: "all" (default), "word" or "line". Returns true if something was inserted.
function M.accept(kind)
  local buf = vim.api.nvim_get_current_buf()
  local item = buf_state(buf).item
  if not item then
    return false
  end
  local text = item.text
  local part = text
  if kind == "word" then
    part = text:match("^%s*[%w_]+") or text:match("^%s*[^%w_%s]+") or text
  elseif kind == "line" then
    local nl = text:find("\n", 2, true)
    part = nl and text:sub(1, nl) or text
  end
  M.clear(buf)
  insert(buf, item, part)
  local rest = text:sub(#part + 1)
  if rest ~= "" then
    local cur = vim.api.nvim_win_get_cursor(0)
    show(buf, rest, cur[1] - 1, cur[2])
  end
  return true
end

local function map(lhs, fn, fallback)
  if not lhs or lhs == "" then
    return
  end
  vim.keymap.set("i", lhs, function()
    if fn() then
      return ""
    end
    return fallback and vim.api.nvim_replace_termcodes(lhs, true, false, true) or ""
  end, { expr = true, silent = true, desc = "steercode" })
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", M.config, opts or {})
  local k = M.config.keymaps
  if M.config.native and vim.lsp.inline_completion ~= nil then
    vim.lsp.inline_completion.enable(true)
    map(k.accept, function()
      return vim.lsp.inline_completion.get()
    end, true)
    return M
  end
  local group = vim.api.nvim_create_augroup("steercode", { clear = true })
  vim.api.nvim_create_autocmd({ "TextChangedI", "TextChangedP" }, {
    group = group,
    callback = function(ev)
      if client_for(ev.buf) then
        schedule_request(ev.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    callback = function(ev)
      cancel(ev.buf)
      M.clear(ev.buf)
    end,
  })
  map(k.accept, function()
    return M.accept("all")
  end, true)
  map(k.accept_word, function()
    return M.accept("word")
  end, false)
  map(k.accept_line, function()
    return M.accept("line")
  end, false)
  map(k.dismiss, function()
    M.clear(0)
    return true
  end, false)
  return M
end

return M
