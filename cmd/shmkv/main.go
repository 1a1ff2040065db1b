// Command shmkv reads and writes a shmkv store from the shell, shows its
// state, checks it, and demonstrates several processes sharing one.
//
//	shmkv [--store NAME] COMMAND [ARGS]
//
// NAME defaults to $SHMKV_STORE, else "shmkv". Run `shmkv help` for the
// commands. Flags may follow arguments; "--" ends them. Exit codes: 0
// success; 1 key not found, CAS mismatch, or check found damage; 2 usage;
// 3 any other error; 4 no such store; 130 compact stopped by SIGINT. The
// README's CLI section lists every case.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/shmkv/shmkv/store"
)

func main() {
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK       = 0
	exitNotFound = 1 // key not found, CAS mismatch, check found damage, demo verification failed
	exitUsage    = 2
	exitError    = 3
	// exitNoStore: the store does not exist (every command but put,
	// cas --absent and create, which make it). Apart from 1, so that a
	// script can tell a missing key (a cache miss) from a mistyped or
	// vanished store (after a reboot), and apart from 3, which is for
	// stores that exist but fail.
	exitNoStore = 4
)

// envStore names the environment variable that sets the default store.
const envStore = "SHMKV_STORE"

// defaultStoreName is the store used without --store or $SHMKV_STORE.
const defaultStoreName = "shmkv"

// cli is one invocation: its streams and the store it names.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	name           string        // --store
	timeout        time.Duration // --timeout: Options.WriteTimeout
}

// command is one subcommand. args is its synopsis after the command name.
type command struct {
	name, args, summary string
	run                 func(c *cli, args []string) error
	hidden              bool
}

// commands in the order usage lists them. Set in init: the run functions
// refer to the table (through usage) themselves.
var commands []command

func init() {
	commands = []command{
		{name: "put", args: "KEY [VALUE]", summary: "set KEY to VALUE; VALUE is read from stdin (exact bytes) when omitted", run: (*cli).put},
		{name: "get", args: "[--raw | --json] KEY", summary: "print KEY's value and a newline; --raw: the exact bytes only; --json: {\"key\":..,\"value\":..}", run: (*cli).get},
		{name: "del", args: "KEY", summary: "delete KEY", run: (*cli).del},
		{name: "incr", args: "KEY [N]", summary: "add N (default 1, may be negative) to the counter at KEY (decimal text; missing counts as 0) and print its new value", run: (*cli).incr},
		{name: "cas", args: "KEY OLD NEW | cas --absent KEY NEW", summary: "set KEY to NEW only if its value is OLD (--absent: only if KEY is absent, creating the store if missing)", run: (*cli).cas},
		{name: "keys", args: "[--json | -0] [PREFIX]", summary: "print the keys (starting with PREFIX), sorted, one per line; --json: a JSON array; -0: each followed by a NUL byte", run: (*cli).keys},
		{name: "stat", args: "[--json]", summary: "show sizes, fill, free space and fragmentation, compaction, options, backing memory, writer lock and counters", run: (*cli).stat},
		{name: "compact", args: "", summary: "move entries so free space is one piece (a progress bar on a terminal; Ctrl-C stops it cleanly)", run: (*cli).compact},
		{name: "check", args: "", summary: "verify every invariant of the store; print each violation", run: (*cli).check},
		{name: "dump", args: "[FILE | -]", summary: "write every key and value, as they all were at one instant, in the portable dump format, to FILE or stdout (writers go on)", run: (*cli).dump},
		{name: "load", args: "[FILE | -] [--replace | --merge] [--size SIZE] [--max-size SIZE] [--entries N]", summary: "create the store from a dump (from stdin without FILE), with the dumped store's options (its initial and maximum size too); --replace swaps it in only once fully loaded", run: (*cli).load},
		{name: "backup", args: "FILE | -", summary: "write the store's memory image, as it was at one instant, to FILE (for this format version; writers go on)", run: (*cli).backup},
		{name: "restore", args: "FILE | - [--replace]", summary: "recreate the store from a backup; it is checked (check) before it takes the name", run: (*cli).restore},
		{name: "create", args: "[--size SIZE] [--max-size SIZE] [--entries N] [--hugepages off|thp|tlb] [--noreserve] [--populate] [--lock] [--mode 0600]", summary: "create the store (an error if it exists): by default 8 MiB, growing as writes need room up to the size of " + store.ShmDir + "; --size alone: that size, fixed; --max-size: grows up to it", run: (*cli).create},
		{name: "grow", args: "--size SIZE", summary: "make the store at least SIZE bytes now (up to its maximum size), as writes do by themselves when they need room, and print its new size", run: (*cli).grow},
		{name: "rm", args: "[--force]", summary: "remove (unlink) the store; processes that have it open keep it. An object that is not a shmkv store is left alone unless --force", run: (*cli).rm},
		{name: "ls", args: "", summary: "list the shmkv stores in " + store.ShmDir + " (and on hugetlbfs mounts)", run: (*cli).ls},
		{name: "demo", args: "[--duration 2s]", summary: "watch several processes share a store while one writer is SIGKILLed", run: (*cli).demo},
		{name: "bench", args: "[--readers 1] [--writers 1] [--duration 3s] [--keys 100000] [--key-size 16] [--value-size 100] [--scaling]", summary: "measure get and put throughput and latency of reader and writer processes on a fresh store", run: (*cli).bench},
		{name: "version", args: "", summary: "print shmkv's version and the store format version (also --version)", run: (*cli).version},
		{name: "help", args: "[COMMAND]", summary: "print this help, or a command's", run: (*cli).help},
		{name: "demo-worker", args: "ROLE STORE ID ...", summary: "a process of the demo", run: (*cli).demoWorker, hidden: true},
		{name: "bench-worker", args: "ROLE STORE ID KEYS KEYSIZE VALUESIZE DURATION", summary: "a process of the bench", run: (*cli).benchWorker, hidden: true},
	}
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// Main runs the command line args (without the program name) and returns
// the exit code. Tests call it in-process.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	top := flag.NewFlagSet("shmkv", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	top.Usage = func() {}
	def := os.Getenv(envStore)
	if def == "" {
		def = defaultStoreName
	}
	top.StringVar(&c.name, "store", def, "")
	top.DurationVar(&c.timeout, "timeout", 0, "")
	showVersion := top.Bool("version", false, "")
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "shmkv: %v\n", err)
		c.usage(stderr)
		return exitUsage
	}
	if *showVersion {
		fmt.Fprint(stdout, versionText())
		return exitOK
	}
	rest := top.Args()
	if len(rest) == 0 {
		fmt.Fprintln(stderr, "shmkv: no command")
		c.usage(stderr)
		return exitUsage
	}
	cmd := lookup(rest[0])
	if cmd == nil {
		fmt.Fprintf(stderr, "shmkv: unknown command %q (run \"shmkv help\")\n", rest[0])
		return exitUsage
	}
	return c.report(cmd, cmd.run(c, rest[1:]))
}

// report prints err (if any) and turns it into the exit code.
func (c *cli) report(cmd *command, err error) int {
	var ue *usageError
	var ce *codeError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelpShown):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "shmkv %s: %s\n", cmd.name, ue.msg)
		fmt.Fprintf(c.stderr, "usage: shmkv [--store NAME] %s %s\n", cmd.name, cmd.args)
		return exitUsage
	case errors.As(err, &ce):
		fmt.Fprintln(c.stderr, ce.msg)
		return ce.code
	}
	fmt.Fprintln(c.stderr, c.errLine(err))
	return exitError
}

// usageError is a wrong command line: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// codeError carries a message already formatted for stderr and its exit
// code (1 for not found, mismatch and damage).
type codeError struct {
	code int
	msg  string
}

func (e *codeError) Error() string { return e.msg }

// errHelpShown ends a command whose -h printed its help.
var errHelpShown = errors.New("help shown")

// opError is an error of the store's with what the command was doing
// ("put \"k\""), which errLine prints in place of the store's Op, and a
// hint to add after the cause.
type opError struct {
	doing, hint string
	err         error
}

func (e *opError) Error() string { return e.doing + ": " + e.err.Error() }

func (e *opError) Unwrap() error { return e.err }

// failed is err, from the store, while doing what doing says.
func failed(doing string, err error) error { return &opError{doing: doing, err: err} }

// errLine is the one-line message for an error about the store:
// "shmkv: store NAME: OP: CAUSE". The store names itself once, at the
// start, so errLine takes OP and CAUSE from the *store.Error (or the
// command's opError around it) rather than from its text, which would
// name the store again.
func (c *cli) errLine(err error) string {
	doing, hint, cause := "", "", err
	if oe, ok := err.(*opError); ok {
		doing, hint, cause = oe.doing, oe.hint, oe.err
	}
	var op string
	if se, ok := cause.(*store.Error); ok {
		op, cause = se.Op, se.Err
		if doing == "" {
			doing = se.Op
		}
	}
	msg := causeText(cause)
	if doing != "" {
		msg = doing + ": " + msg
	}
	switch {
	case errors.Is(err, fs.ErrNotExist) && op != "remove":
		msg += ` (no such store: create it with "shmkv create" or "shmkv put")`
	case errors.Is(err, fs.ErrExist):
		msg += ` (the store exists: remove it first with "shmkv rm")`
	}
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return fmt.Sprintf("shmkv: store %q: %s", c.name, msg)
}

// causeText is the text of a cause for errLine, on one line. The store's
// errors wrap its sentinels (store.ErrFull...), whose text begins with
// "shmkv: ", as every one of shmkv's errors does when it stands alone;
// errLine's line says it once, at its start.
func causeText(err error) string {
	msg := strings.TrimPrefix(err.Error(), "shmkv: ")
	return strings.ReplaceAll(msg, "\n", "; ")
}

// flags makes the FlagSet of a command; parse it with c.parse. Every
// command takes --store too, so that it may also follow the command
// (`shmkv get KEY --store NAME`).
func (c *cli) flags(name string) *flag.FlagSet {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	fl.Usage = func() {}
	fl.StringVar(&c.name, "store", c.name, "the store `NAME`, as before the command")
	fl.DurationVar(&c.timeout, "timeout", c.timeout, "how long a write waits for the writer lock a live process holds (0: as long as it runs)")
	return fl
}

// parse parses a command's flags and checks it got between min and max
// positional arguments (max < 0: no limit). Flags may follow the
// arguments, and "--" ends them (splitArgs). -h prints the command's help.
func (c *cli) parse(fl *flag.FlagSet, args []string, min, max int) ([]string, error) {
	flags, positional := splitArgs(fl, args)
	if err := fl.Parse(append(append(flags, "--"), positional...)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.commandHelp(c.stdout, lookup(fl.Name()), fl)
			return nil, errHelpShown
		}
		if strings.HasPrefix(err.Error(), "flag provided but not defined") {
			return nil, usagef("%v (an argument that starts with a dash goes after \"--\", as in: shmkv %s -- -k)", err, fl.Name())
		}
		return nil, usagef("%v", err)
	}
	rest := fl.Args()
	switch {
	case len(rest) < min:
		return nil, usagef("too few arguments (%d)", len(rest))
	case max >= 0 && len(rest) > max:
		return nil, usagef("too many arguments (%d): %s", len(rest), keysString(rest))
	}
	return rest, nil
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, `shmkv: a crash-safe key-value store in POSIX shared memory (`+store.ShmDir+`/NAME),
shared by every process on the host that opens it.

usage: shmkv [--store NAME] COMMAND [ARGS]
       shmkv --version

--store NAME  the store (default $`+envStore+`, else "`+defaultStoreName+`");
              only put, cas --absent and create create it (put and cas with
              default options: 8 MiB, growing as writes need room); the
              other commands exit 4 if it is missing

Flags may follow arguments (get KEY --raw); "--" ends the flags, for a key
that starts with a dash (get -- -k).

commands:
`)
	for _, cmd := range commands {
		if cmd.hidden {
			continue
		}
		syn := cmd.name
		if cmd.args != "" {
			syn += " " + cmd.args
		}
		if len(syn) > 24 {
			fmt.Fprintf(w, "  %s\n  %-24s  %s\n", syn, "", cmd.summary)
		} else {
			fmt.Fprintf(w, "  %-24s  %s\n", syn, cmd.summary)
		}
	}
	fmt.Fprint(w, `
exit codes: 0 success; 1 key not found (get, del), CAS mismatch, or check found
damage; 2 usage; 3 any other error (one line on stderr naming the store);
4 no such store; 130 compact, dump, load, backup or restore stopped by Ctrl-C.
`)
}

// commandHelp prints one command's synopsis and flags.
func (c *cli) commandHelp(w io.Writer, cmd *command, fl *flag.FlagSet) {
	fmt.Fprintf(w, "usage: shmkv [--store NAME] %s %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
	if fl == nil {
		return
	}
	n := 0
	fl.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		fl.SetOutput(w)
		fl.PrintDefaults()
		fl.SetOutput(io.Discard)
	}
}

func (c *cli) help(args []string) error {
	fl := c.flags("help")
	rest, err := c.parse(fl, args, 0, 1)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		c.usage(c.stdout)
		return nil
	}
	cmd := lookup(rest[0])
	if cmd == nil || cmd.hidden {
		return usagef("unknown command %q", rest[0])
	}
	// Show its flags by asking it for -h.
	return cmd.run(c, []string{"-h"})
}
