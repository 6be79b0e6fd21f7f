/* nnlua.c: the nnlua interpreter, a Lua 5.4 stand-alone interpreter with nn
 * built in.
 *
 * Modelled on Lua 5.4's lua.c (same options, same `arg` table, same error
 * reporting), with two additions: `require "nn"` finds the built-in module
 * through package.preload, and reading the global `nn` requires it the first
 * time. The module is loaded lazily so that `nnlua -e ''` starts as fast as
 * lua5.4 does.
 *
 *   nnlua [options] [script [args]]
 *     -e stat   execute string 'stat'
 *     -i        enter interactive mode after executing 'script'
 *     -l mod    require library 'mod' into global 'mod' (-l g=mod: into 'g')
 *     -v        show version information
 *     -E        ignore environment variables (LUA_INIT, LUA_PATH, ...)
 *     -W        turn warnings on
 *     --        stop handling options
 *     -         stop handling options and execute stdin
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

#ifdef HAVE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#ifndef NNLUA_VERSION
#define NNLUA_VERSION "0.1.0"
#endif

#define NNLUA_PROGNAME "nnlua"
#define NNLUA_PROMPT "> "
#define NNLUA_PROMPT2 ">> "
#define NNLUA_MAXINPUT 4096

int luaopen_nn(lua_State *L);
/* An error the interpreter reports: under mpirun, nn.distributed passes
   the one that ends the script on to the other ranks (nn_distributed.c). */
void nnl_note_fatal_error(const char *message);

/* The state a SIGINT handler may touch: only to set a hook (see on_sigint). */
static lua_State *volatile interrupt_L = NULL;

/* Prefix for error messages; NULL at the interactive prompt, as lua.c does. */
static const char *progname = NNLUA_PROGNAME;

/* ---- messages ---------------------------------------------------------- */

static void print_message(const char *pname, const char *msg) {
  if (pname) fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

/* Prints the error message on the top of the stack when status is not OK. */
static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL) msg = "(error object is not a string)";
    print_message(progname, msg);
    nnl_note_fatal_error(msg);
    lua_pop(L, 1);
  }
  return status;
}

static void print_version(void) {
  printf("nnlua %s (%s)\n", NNLUA_VERSION, LUA_RELEASE);
  fflush(stdout);
}

static void print_usage(const char *badoption) {
  fprintf(stderr, "%s: ", NNLUA_PROGNAME);
  if (badoption[1] == 'e' || badoption[1] == 'l')
    fprintf(stderr, "'%s' needs argument\n", badoption);
  else
    fprintf(stderr, "unrecognized option '%s'\n", badoption);
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -i        enter interactive mode after executing 'script'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g'\n"
          "  -v        show version information\n"
          "  -E        ignore environment variables\n"
          "  -W        turn warnings on\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n",
          NNLUA_PROGNAME);
  fflush(stderr);
}

/* ---- running chunks ---------------------------------------------------- */

/* Ctrl-C: a signal handler cannot safely change a Lua state, so it only sets
   a hook; the hook raises the error at the next call, return or instruction. */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

static void set_sigint(void (*handler)(int)) {
  struct sigaction sa;
  sa.sa_handler = handler;
  sa.sa_flags = 0;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
}

static void on_sigint(int sig) {
  lua_State *L = interrupt_L;
  set_sigint(SIG_DFL); /* a second Ctrl-C kills the process */
  (void)sig;
  if (L) lua_sethook(L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Message handler: the message plus a traceback. */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* lua_pcall with the traceback handler, and Ctrl-C turned into a Lua error
   while the chunk runs. */
static int docall(lua_State *L, int narg, int nres) {
  int status;
  int base = lua_gettop(L) - narg;
  struct sigaction previous; /* the default, or the prompt's handler */
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  interrupt_L = L;
  sigaction(SIGINT, NULL, &previous);
  set_sigint(on_sigint);
  status = lua_pcall(L, narg, nres, base);
  sigaction(SIGINT, &previous, NULL);
  lua_remove(L, base);
  return status;
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

static int dofile(lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod: global mod = require "mod"; -l g=mod: global g = require "mod". */
static int dolibrary(lua_State *L, const char *spec) {
  int status;
  const char *eq = strchr(spec, '=');
  const char *modname = eq ? eq + 1 : spec;
  if (eq) lua_pushlstring(L, spec, (size_t)(eq - spec)); /* the global's name */
  else lua_pushstring(L, spec);
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  status = docall(L, 1, 1);
  if (status == LUA_OK) {
    lua_setglobal(L, lua_tostring(L, -2));
    lua_pop(L, 1);
  } else {
    lua_remove(L, -2); /* leave the message on top for report */
  }
  return report(L, status);
}

/* The global `arg`: arg[0] the script, its arguments at 1..n, the interpreter
   and its options at negative indices. Without a script, arg[0] is argv[0]. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
  int i, narg;
  if (script == argc) script = 0;
  narg = argc - (script + 1);
  lua_createtable(L, narg, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* Pushes arg[1..#arg] as the script's varargs. */
static int push_args(lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -i);
  return n;
}

static int handle_script(lua_State *L, char **argv) {
  int status;
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL; /* stdin */
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = push_args(L);
    status = docall(L, n, LUA_MULTRET);
  }
  return report(L, status);
}

/* ---- the interactive prompt ---------------------------------------------
 * Kept to these functions (repl_*). What can be plain Lua (printing values,
 * completion candidates, help, %time) lives in lua/nn/repl.lua, loaded when
 * the prompt starts; this part reads lines, keeps the history and turns
 * Ctrl-C into an interrupt. */

/* What repl_loadline gives besides a Lua status. */
enum { REPL_EOF = -1, REPL_CANCELLED = -2, REPL_REWRITTEN = -3 };

/* Set by Ctrl-C while a line is being read: the line is dropped. */
static volatile sig_atomic_t repl_line_cancelled = 0;

/* The registry key of the nn.repl table, once the prompt has loaded it. */
static const char *const REPL_KEY = "nnlua.repl";

/* Ctrl-C at the prompt (installed for the whole session, and put back by
   docall after each chunk): only a flag; the line reader sees it. */
static void on_sigint_at_prompt(int sig) {
  (void)sig;
  repl_line_cancelled = 1;
}

/* SIGINT without SA_RESTART, so that a blocked read returns EINTR. */
static void set_prompt_sigint(void) {
  repl_line_cancelled = 0;
  set_sigint(on_sigint_at_prompt);
}

/* Pushes nn.repl's function `name`; 0 (nothing pushed) when it is missing. */
static int repl_push_function(lua_State *L, const char *name) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, REPL_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {
    lua_pop(L, 2);
    return 0;
  }
  lua_remove(L, -2);
  return 1;
}

#ifdef HAVE_READLINE
/* The state completion runs in (readline's callbacks take no user data). */
static lua_State *repl_L = NULL;
static char history_path[4096];
#define REPL_HISTORY_SIZE 1000

/* Tab: names from nn.repl.complete, file names inside a string. */
static char **repl_completion_list = NULL;
static size_t repl_completion_count = 0;
static size_t repl_completion_next = 0;

static void repl_free_completions(void) {
  for (size_t i = repl_completion_next; i < repl_completion_count; i++) free(repl_completion_list[i]);
  free(repl_completion_list);
  repl_completion_list = NULL;
  repl_completion_count = repl_completion_next = 0;
}

/* readline's generator: hands out the list gathered below, one per call. */
static char *repl_completion_generator(const char *text, int state) {
  (void)text;
  (void)state;
  if (repl_completion_next < repl_completion_count)
    return repl_completion_list[repl_completion_next++];
  return NULL;
}

/* Calls nn.repl.complete(line up to the cursor, word) (protected) and keeps
   its strings for the generator. */
static int repl_gather(lua_State *L) {
  const char *word = lua_tostring(L, 2);
  size_t n;
  lua_settop(L, 2);
  if (!repl_push_function(L, "complete")) return 0;
  lua_pushvalue(L, 1);
  lua_pushstring(L, word);
  lua_call(L, 2, 1);
  if (!lua_istable(L, -1)) return 0;
  n = (size_t)luaL_len(L, -1);
  repl_completion_list = calloc(n + 1, sizeof(char *));
  if (repl_completion_list == NULL) return 0;
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    const char *s = lua_tostring(L, -1);
    if (s != NULL) {
      char *copy = strdup(s);
      if (copy == NULL) break;
      repl_completion_list[repl_completion_count++] = copy;
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* The quote that opens a string still open at position upto of the line
   (0 when none): Tab inside a string completes a file name. */
static int repl_open_quote(int upto) {
  int quote = 0;
  for (int i = 0; i < upto && rl_line_buffer[i] != '\0'; i++) {
    char c = rl_line_buffer[i];
    if (quote != 0 && c == '\\') i++;
    else if (quote != 0 && c == quote) quote = 0;
    else if (quote == 0 && (c == '"' || c == '\'')) quote = c;
  }
  return quote;
}

#define REPL_NAME_BREAKS " \t\n\"'`@$><=;|&{(,)}[]+-*/%^#~.:"
#define REPL_FILE_BREAKS " \t\n\"'"

/* Where the word to complete starts: after the last '.' or ':' for names
   ("t:su" completes "su"), after the quote for a file name. */
static char *repl_word_breaks(void) {
  static char name_breaks[] = REPL_NAME_BREAKS;
  static char file_breaks[] = REPL_FILE_BREAKS;
  return repl_open_quote(rl_point) ? file_breaks : name_breaks;
}

static char **repl_complete(const char *text, int start, int end) {
  char **matches;
  lua_State *L = repl_L;
  (void)end;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  rl_completion_append_character = '\0';
  if (repl_open_quote(start)) { /* inside a string: a file name */
    rl_filename_completion_desired = 1;
    return rl_completion_matches(text, rl_filename_completion_function);
  }
  if (L == NULL) return NULL;
  repl_free_completions();
  lua_pushcfunction(L, repl_gather);
  lua_pushlstring(L, rl_line_buffer, (size_t)start + strlen(text));
  lua_pushstring(L, text);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
  matches = repl_completion_count > 0 ? rl_completion_matches(text, repl_completion_generator) : NULL;
  repl_free_completions();
  return matches;
}

/* readline asks for a key through this: Ctrl-C (EINTR with the flag set)
   ends the line, marked as cancelled, with "^C" shown where it was typed. */
static int repl_getc(FILE *stream) {
  for (;;) {
    unsigned char c;
    ssize_t got;
    if (repl_line_cancelled) {
      rl_point = rl_end;
      rl_insert_text("^C");
      return '\n';
    }
    got = read(fileno(stream), &c, 1);
    if (got == 1) return c;
    if (got == 0) return EOF;
    if (errno != EINTR) return EOF;
  }
}

static void repl_init(lua_State *L) {
  const char *home = getenv("HOME");
  repl_L = L;
  rl_readline_name = "nnlua";
  rl_catch_signals = 0; /* Ctrl-C is ours: see repl_getc */
  rl_getc_function = repl_getc;
  rl_attempted_completion_function = repl_complete;
  /* "t:su" completes "su" after the ':'; a quote starts a file name */
  rl_completion_word_break_hook = repl_word_breaks;
  history_path[0] = '\0';
  if (home != NULL && home[0] != '\0' &&
      (size_t)snprintf(history_path, sizeof history_path, "%s/.nnlua_history", home) <
          sizeof history_path) {
    stifle_history(REPL_HISTORY_SIZE);
    read_history(history_path);
  } else {
    history_path[0] = '\0';
  }
}

static void repl_done(void) {
  if (history_path[0] != '\0') {
    write_history(history_path);
    history_truncate_file(history_path, REPL_HISTORY_SIZE);
  }
  repl_L = NULL;
}

static char *repl_readline(const char *prompt) {
  char *line;
  set_prompt_sigint();
  line = readline(prompt);
  return line;
}

/* Each line goes to the history file as soon as it is entered, so a session
   that ends badly still keeps it. */
static void repl_saveline(const char *line) {
  if (line[0] == '\0') return;
  add_history(line);
  if (history_path[0] != '\0' && append_history(1, history_path) != 0)
    write_history(history_path); /* the file did not exist yet */
}
#else
static void repl_init(lua_State *L) {
  (void)L;
}
static void repl_done(void) {}
static char *repl_readline(const char *prompt) {
  char *buf = malloc(NNLUA_MAXINPUT);
  size_t len;
  if (buf == NULL) return NULL;
  fputs(prompt, stdout);
  fflush(stdout);
  set_prompt_sigint();
  if (fgets(buf, NNLUA_MAXINPUT, stdin) == NULL) {
    if (!repl_line_cancelled || feof(stdin)) {
      free(buf);
      return NULL;
    }
    clearerr(stdin); /* Ctrl-C: an empty, cancelled line */
    buf[0] = '\0';
    fputs("\n", stdout);
  }
  len = strlen(buf);
  if (len > 0 && buf[len - 1] == '\n') buf[len - 1] = '\0';
  return buf;
}
static void repl_saveline(const char *line) {
  (void)line;
}
#endif

static const char *repl_prompt(lua_State *L, int firstline) {
  const char *p;
  lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2");
  p = lua_tostring(L, -1);
  if (p == NULL) p = firstline ? NNLUA_PROMPT : NNLUA_PROMPT2;
  return p; /* stays valid while its value is on the stack */
}

/* Reads one line and pushes it; 0 at end of input. A line ended by Ctrl-C
   is pushed empty, with repl_line_cancelled set. */
static int repl_pushline(lua_State *L, int firstline) {
  char *line = repl_readline(repl_prompt(L, firstline));
  size_t len;
  lua_pop(L, 1); /* the prompt */
  if (line == NULL) return 0;
  if (repl_line_cancelled) {
    free(line);
    lua_pushliteral(L, "");
    return 1;
  }
  len = strlen(line);
  if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
  if (firstline && line[0] == '=') /* Lua 5.1's "=expr" */
    lua_pushfstring(L, "return %s", line + 1);
  else
    lua_pushlstring(L, line, len);
  free(line);
  return 1;
}

/* A syntax error that ends at <eof> (its message on the top of the stack):
   the statement goes on on the next line. */
static int repl_incomplete(lua_State *L, int status) {
  static const char mark[] = "<eof>";
  const size_t marklen = sizeof(mark) - 1;
  if (status == LUA_ERRSYNTAX) {
    size_t lmsg;
    const char *msg = lua_tolstring(L, -1, &lmsg);
    if (msg != NULL && lmsg >= marklen && strcmp(msg + lmsg - marklen, mark) == 0) return 1;
  }
  return 0;
}

/* 1 when the line ends with ';' (blanks aside): its value is not printed. */
static int repl_silenced(const char *line, size_t len) {
  while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
  return len > 0 && line[len - 1] == ';';
}

/* Tries the line on the stack as "return <line>" (a trailing ';' dropped):
   an expression to print. */
static int repl_addreturn(lua_State *L) {
  size_t len;
  const char *line = lua_tolstring(L, -1, &len);
  while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == ';')) len--;
  lua_pushliteral(L, "return ");
  lua_pushlstring(L, line, len);
  lua_pushliteral(L, ";");
  lua_concat(L, 3);
  const char *retline = lua_tostring(L, -1);
  int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
  if (status == LUA_OK) {
    lua_remove(L, -2); /* the "return" line */
    repl_saveline(line);
  } else {
    lua_pop(L, 2); /* the error and the "return" line */
  }
  return status;
}

/* With the compiled statement on top and its text at index 1: when the text
   declares locals, replaces the chunk by the one nn.repl.keep_locals gives,
   which keeps them as globals for the lines after it (each line is a chunk
   of its own, whose locals would end with it). Anything failing leaves the
   chunk as it was. */
static void repl_keep_locals(lua_State *L) {
  if (!repl_push_function(L, "keep_locals")) return;
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isstring(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  size_t len;
  const char *code = lua_tolstring(L, -1, &len);
  if (luaL_loadbuffer(L, code, len, "=stdin") != LUA_OK) {
    lua_pop(L, 2); /* the error and the code */
    return;
  }
  lua_remove(L, -2); /* the code */
  lua_remove(L, -2); /* the chunk it replaces */
}

/* Compiles the line as a statement, reading more lines while incomplete. */
static int repl_multiline(lua_State *L) {
  for (;;) {
    size_t len;
    const char *line = lua_tolstring(L, 1, &len);
    int status = luaL_loadbuffer(L, line, len, "=stdin");
    /* complete (or wrong), or input ended: the chunk or the error is on top */
    if (!repl_incomplete(L, status) || !repl_pushline(L, 0)) {
      repl_saveline(line);
      if (status == LUA_OK) repl_keep_locals(L);
      return status;
    }
    if (repl_line_cancelled) { /* Ctrl-C on a continuation line: drop it all */
      lua_pop(L, 2);
      lua_pushliteral(L, "");
      return REPL_CANCELLED;
    }
    lua_remove(L, -2); /* the "<eof>" error */
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

/* `?x` and `%time ...`: the line on the stack is replaced by the chunk
   compiled from the Lua code nn.repl.rewrite gives for it (REPL_REWRITTEN),
   or by an error message (a status other than OK); any other line stays
   (LUA_OK). */
static int repl_rewrite(lua_State *L) {
  const char *line = lua_tostring(L, -1);
  const char *p = line;
  while (*p == ' ' || *p == '\t') p++;
  if (*p != '?' && *p != '%') return LUA_OK;
  repl_saveline(line);
  if (!repl_push_function(L, "rewrite")) return LUA_OK;
  lua_pushvalue(L, -2);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
    lua_remove(L, -2);
    return LUA_ERRRUN;
  }
  if (!lua_isstring(L, -2)) {
    lua_remove(L, -2); /* nil, then the message */
    lua_remove(L, -2);
    return LUA_ERRSYNTAX;
  }
  lua_pop(L, 1);     /* the nil message */
  lua_remove(L, -2); /* the line: the code stays */
  size_t len;
  const char *code = lua_tolstring(L, -1, &len);
  int status = luaL_loadbuffer(L, code, len, "=stdin");
  lua_remove(L, -2); /* the code: the chunk or the error stays */
  return status == LUA_OK ? REPL_REWRITTEN : status;
}

/* Leaves one compiled chunk (or an error message) on an empty stack;
   REPL_EOF at the end of input, REPL_CANCELLED for a line dropped by Ctrl-C.
   *silent is set when the line ends with ';'. */
static int repl_loadline(lua_State *L, int *silent) {
  int status;
  size_t len;
  lua_settop(L, 0);
  *silent = 0;
  if (!repl_pushline(L, 1)) return REPL_EOF;
  if (repl_line_cancelled) return REPL_CANCELLED;
  const char *line = lua_tolstring(L, 1, &len);
  *silent = repl_silenced(line, len);
  status = repl_rewrite(L);
  if (status == REPL_REWRITTEN) return LUA_OK; /* the chunk replaced the line */
  if (status != LUA_OK) return status; /* its message replaced the line */
  if ((status = repl_addreturn(L)) != LUA_OK) status = repl_multiline(L);
  if (status == REPL_CANCELLED) {
    lua_settop(L, 0);
    return REPL_CANCELLED;
  }
  lua_remove(L, 1); /* the line */
  return status;
}

/* Prints the results on the stack through nn.repl.show (tensors with their
   shape, modules as trees, tables nested); without it, as print does. Runs
   protected: a __tostring may raise. */
static int repl_print_values(lua_State *L) {
  int n = lua_gettop(L);
  size_t len;
  const char *text;
  if (repl_push_function(L, "show")) {
    lua_insert(L, 1);
    lua_call(L, n, 1);
  } else {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
      if (i > 1) luaL_addchar(&b, '\t');
      luaL_tolstring(L, i, NULL);
      luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
  }
  text = lua_tolstring(L, -1, &len);
  if (text != NULL) fwrite(text, 1, len, stdout);
  fputs("\n", stdout);
  fflush(stdout);
  return 0;
}

/* `_` holds the first result of the last line that gave one; it is printed
   unless the line ended with ';'. */
static void repl_print(lua_State *L, int silent) {
  int n = lua_gettop(L);
  if (n == 0) return;
  lua_pushvalue(L, 1);
  lua_setglobal(L, "_");
  if (silent) {
    lua_settop(L, 0);
    return;
  }
  luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
  lua_pushcfunction(L, repl_print_values);
  lua_insert(L, 1);
  if (docall(L, n, 0) != LUA_OK)
    print_message(progname, lua_pushfstring(L, "error printing result (%s)", lua_tostring(L, -1)));
}

/* Loads nn and nn.repl for the prompt, makes `help` a global (unless the
   user has one), and keeps nn.repl in the registry. Failing that, the prompt
   still works, printing as print does. */
static int repl_load(lua_State *L) {
  lua_getglobal(L, "nn");
  lua_getfield(L, -1, "repl");
  lua_setfield(L, LUA_REGISTRYINDEX, REPL_KEY);
  if (lua_getglobal(L, "help") == LUA_TNIL) {
    lua_getfield(L, -2, "help");
    lua_setglobal(L, "help");
  }
  return 0;
}

/* Pushes what nn.repl.save_state() returns (nil when it fails). */
static void repl_save_state(lua_State *L) {
  if (!repl_push_function(L, "save_state")) {
    lua_pushnil(L);
  } else if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
}

/* After an error or an interrupt: nn.repl.restore_state(saved), so that an
   interrupted nn.no_grad does not leave recording off. */
static void repl_restore_state(lua_State *L, int saved) {
  if (lua_isnil(L, saved) || !repl_push_function(L, "restore_state")) return;
  lua_pushvalue(L, saved);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}

static void repl_run(lua_State *L) {
  int status;
  int silent;
  const char *oldprogname = progname;
  progname = NULL;
  set_prompt_sigint();
  lua_pushcfunction(L, repl_load);
  if (docall(L, 0, 0) != LUA_OK) report(L, LUA_ERRRUN);
  repl_init(L);
  while ((status = repl_loadline(L, &silent)) != REPL_EOF) {
    if (status == REPL_CANCELLED) continue; /* Ctrl-C at the prompt: a fresh line */
    if (status == LUA_OK) {
      /* the chunk at 1; the state to restore on error goes beneath it */
      repl_save_state(L);
      lua_insert(L, 1);
      status = docall(L, 0, LUA_MULTRET);
      if (status == LUA_OK) {
        lua_remove(L, 1);
        repl_print(L, silent);
      } else {
        repl_restore_state(L, 1);
        lua_remove(L, 1);
        report(L, status);
      }
    } else {
      report(L, status);
    }
  }
  lua_settop(L, 0);
  set_sigint(SIG_DFL);
  repl_done();
  fputs("\n", stdout);
  fflush(stdout);
  progname = oldprogname;
}

/* ---- nn: built in, and a global on first use --------------------------- */

/* _G's __index while the globals `nn` and `help` have not been read:
   requires "nn", stores nn (or nn.help, the same help as at the prompt) with
   rawset (later reads cost nothing) and returns it. Any other missing global
   is nil, as without a metatable. A script that sets `nn` or `help` itself
   wins, since __index only runs for absent keys; one that replaces _G's
   metatable (strict mode) should `local nn = require "nn"`, as scripts do
   anyway. */
static int global_index(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE); /* reachable as getmetatable(_G).__index */
  const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  int is_help = key != NULL && strcmp(key, "help") == 0;
  if (key == NULL || (strcmp(key, "nn") != 0 && !is_help)) return 0;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "nn");
  lua_call(L, 1, 1);
  if (is_help) lua_getfield(L, -1, "help");
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

static void install_nn(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_nn);
  lua_setfield(L, -2, "nn");
  lua_pop(L, 1);

  lua_pushglobaltable(L);
  if (!lua_getmetatable(L, -1)) lua_newtable(L);
  lua_pushcfunction(L, global_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

/* ---- options ----------------------------------------------------------- */

#define HAS_ERROR 1
#define HAS_I 2
#define HAS_V 4
#define HAS_E 8
#define HAS_NOENV 16

/* Scans the options; *first is the script's index (argc when none) or the bad
   option's. */
static int collect_args(char **argv, int *first) {
  int args = 0;
  int i;
  for (i = 1; argv[i] != NULL; i++) {
    *first = i;
    if (argv[i][0] != '-') return args;
    switch (argv[i][1]) {
    case '-':
      if (argv[i][2] != '\0') return HAS_ERROR;
      *first = i + 1;
      return args;
    case '\0':
      return args;
    case 'E':
      if (argv[i][2] != '\0') return HAS_ERROR;
      args |= HAS_NOENV;
      break;
    case 'W':
      if (argv[i][2] != '\0') return HAS_ERROR;
      break;
    case 'i':
      args |= HAS_I; /* -i implies -v */
      /* fallthrough */
    case 'v':
      if (argv[i][2] != '\0') return HAS_ERROR;
      args |= HAS_V;
      break;
    case 'e':
      args |= HAS_E;
      /* fallthrough */
    case 'l':
      if (argv[i][2] == '\0') {
        i++;
        if (argv[i] == NULL || argv[i][0] == '-') return HAS_ERROR;
      }
      break;
    default:
      return HAS_ERROR;
    }
  }
  *first = i;
  return args;
}

/* Runs -e, -l and -W in order; 0 when one of them fails. */
static int run_args(lua_State *L, char **argv, int n) {
  int i;
  for (i = 1; i < n; i++) {
    int option = argv[i][1];
    switch (option) {
    case 'e':
    case 'l': {
      int status;
      const char *extra = argv[i] + 2;
      if (*extra == '\0') extra = argv[++i];
      status = option == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
      if (status != LUA_OK) return 0;
      break;
    }
    case 'W':
      lua_warning(L, "@on", 0);
      break;
    default:
      break;
    }
  }
  return 1;
}

/* LUA_INIT_5_4, else LUA_INIT: "@file" runs a file, anything else a string. */
static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT" LUA_VERSUFFIX;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dofile(L, init + 1);
  return dostring(L, init, name);
}

/* ---- the state's memory ----------------------------------------------
   Most of what a training loop allocates in Lua is a few dozen bytes made
   and dropped every step (a tensor's box, small tables, closures). Blocks
   up to SMALL_LIMIT bytes are kept on a free list per 16-byte size class
   and handed back without a trip through malloc; larger ones go to the C
   library as usual. Lua always tells the allocator a block's size, so a
   block is returned to the list of the class it was taken from. */
#define SMALL_LIMIT 256
#define SMALL_CLASSES (SMALL_LIMIT / 16)

typedef struct small_block { struct small_block *next; } small_block;
static small_block *small_free[SMALL_CLASSES];

static size_t small_class(size_t size) { return (size - 1) / 16; } /* size in 1..SMALL_LIMIT */

static void block_release(void *ptr, size_t size) {
  if (size > SMALL_LIMIT) {
    free(ptr);
    return;
  }
  small_block *b = ptr;
  size_t c = small_class(size);
  b->next = small_free[c];
  small_free[c] = b;
}

static void *block_take(size_t size) {
  size_t c = small_class(size);
  small_block *b = small_free[c];
  if (b) {
    small_free[c] = b->next;
    return b;
  }
  return malloc((c + 1) * 16);
}

static void *state_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (ptr == NULL) osize = 0; /* then osize only says what kind of object is made */
  if (nsize == 0) {
    if (ptr) block_release(ptr, osize);
    return NULL;
  }
  if (ptr && osize <= SMALL_LIMIT && nsize <= SMALL_LIMIT && small_class(osize) == small_class(nsize))
    return ptr;
  if (nsize > SMALL_LIMIT && (ptr == NULL || osize > SMALL_LIMIT)) return realloc(ptr, nsize);
  void *fresh = nsize <= SMALL_LIMIT ? block_take(nsize) : malloc(nsize);
  if (fresh && ptr) {
    memcpy(fresh, ptr, osize < nsize ? osize : nsize);
    block_release(ptr, osize);
  }
  return fresh;
}

/* Gives the cached blocks back once the state is closed. */
static void free_small_blocks(void) {
  for (size_t c = 0; c < SMALL_CLASSES; c++) {
    while (small_free[c]) {
      small_block *b = small_free[c];
      small_free[c] = b->next;
      free(b);
    }
  }
}

/* What luaL_newstate installs, for a state made with our allocator. */
static int state_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "%s: PANIC: unprotected error in call to Lua API (%s)\n", NNLUA_PROGNAME,
          msg ? msg : "error object is not a string");
  fflush(stderr);
  return 0; /* Lua then aborts */
}

static int warnings_on;
static int warning_continues;

static void state_warning(void *ud, const char *msg, int tocont) {
  (void)ud;
  if (!warning_continues && !tocont && msg[0] == '@') { /* a control message */
    if (strcmp(msg, "@on") == 0) warnings_on = 1;
    else if (strcmp(msg, "@off") == 0) warnings_on = 0;
    return;
  }
  if (warnings_on) {
    if (!warning_continues) fputs("Lua warning: ", stderr);
    fputs(msg, stderr);
    if (!tocont) fputs("\n", stderr);
    fflush(stderr);
  }
  warning_continues = tocont;
}

/* The whole interpreter, run in protected mode so that running out of memory
   while setting up is reported rather than fatal. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script = argc;
  int args = collect_args(argv, &script);
  luaL_checkversion(L);
  if (args == HAS_ERROR) {
    print_usage(argv[script]);
    return 0;
  }
  if (args & HAS_V) print_version();
  if (args & HAS_NOENV) {
    lua_pushboolean(L, 1); /* tells the package library to ignore LUA_PATH etc. */
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  install_nn(L);
  create_arg_table(L, argv, argc, script);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (!(args & HAS_NOENV)) {
    if (handle_luainit(L) != LUA_OK) return 0;
  }
  if (!run_args(L, argv, script)) return 0;
  if (script < argc && handle_script(L, argv + script) != LUA_OK) return 0;
  if (args & HAS_I) {
    repl_run(L);
  } else if (script == argc && !(args & (HAS_E | HAS_V))) {
    if (isatty(0)) {
      print_version();
      repl_run(L);
    } else if (dofile(L, NULL) != LUA_OK) { /* stdin as a file */
      return 0;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* OpenBLAS's idle threads spin for about a tenth of a second after each
   product before they sleep (its default, 2^28 cycles): on a small machine
   that keeps every core busy between steps, and the data loader's
   prefetch thread gets no time. Told to sleep at once (2^4), they sleep
   between the products of one step and every product, and every large
   elementwise op (which run on the same threads: engine/src/cpu/parallel.c),
   pays for waking them. 2^22 cycles (about 2 ms) spans the gaps inside a
   step and lets them sleep when the step is done (the README's section on
   threads). OpenBLAS reads it from OPENBLAS_THREAD_TIMEOUT once, as it
   starts; a value the user set is left alone. A shared OpenBLAS is opened
   at the engine's first product, long after main has set it (under a
   stock lua5.4, engine/src/cpu/openblas_loader.c sets the same); a static
   one starts before main, after the executable's .preinit_array has run,
   so there it is set from that array (in a dynamically linked program, C
   library start-up would discard an environment changed that early). */
static void quiet_idle_blas_threads(void) {
  if (getenv("OPENBLAS_THREAD_TIMEOUT") || getenv("GOTO_THREAD_TIMEOUT")) return;
  setenv("OPENBLAS_THREAD_TIMEOUT", "22", 1); /* on failure OpenBLAS's default stands */
}

#ifdef NN_OPENBLAS_STATIC
/* engine/src/cpu/openblas_loader.c: the kernels OpenBLAS is to run here
   (NULL: its own choice); a shared OpenBLAS is given them as it loads */
const char *nn_cpu_blas_kernels(void);

static void quiet_before_constructors(int argc, char **argv, char **envp) {
  (void)argc, (void)argv, (void)envp;
  quiet_idle_blas_threads();
  const char *kernels = nn_cpu_blas_kernels();
  if (kernels && !getenv("OPENBLAS_CORETYPE")) setenv("OPENBLAS_CORETYPE", kernels, 1);
}
__attribute__((section(".preinit_array"), used)) static void (*const quiet_before_blas)(
    int, char **, char **) = quiet_before_constructors;
#endif

int main(int argc, char **argv) {
  static char *no_args[] = {NNLUA_PROGNAME, NULL};
  int status, result;
  lua_State *L;
  if (argc < 1 || argv[0] == NULL) { /* exec'd with an empty argv */
    argc = 1;
    argv = no_args;
  }
  quiet_idle_blas_threads();
  L = lua_newstate(state_alloc, NULL);
  if (L != NULL) {
    lua_atpanic(L, state_panic);
    lua_setwarnf(L, state_warning, NULL);
  }
  if (L == NULL) {
    print_message(NNLUA_PROGNAME, "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_gc(L, LUA_GCSTOP); /* no collection while setting up */
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  status = lua_pcall(L, 2, 1, 0);
  result = lua_toboolean(L, -1);
  report(L, status);
  lua_close(L);
  free_small_blocks();
  return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
