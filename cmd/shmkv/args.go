package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// splitArgs separates a command's flags from its positional arguments, so
// that flags may follow arguments (`get KEY --raw`), as they do in most
// tools. Every command's arguments go through it (in parse).
//
//   - "--" ends the flags: everything after it is positional, so a key that
//     starts with a dash is written `get -- -k`.
//   - An argument naming a flag of fl ("-raw", "--raw", "--size=1M",
//     "--size 1M") is a flag wherever it stands; a flag that takes a value
//     takes the next argument unless written with "=".
//   - An argument that looks like a flag name but is not one of fl's
//     ("--nope", "-h") is a flag too, so that fl.Parse reports it (or shows
//     the help for -h); an argument that starts with a dash and then a
//     character other than a letter ("-5", "-", "-.5") is positional, so
//     negative numbers need no "--".
func splitArgs(fl *flag.FlagSet, args []string) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		name, hasValue, ok := flagName(a)
		if !ok {
			positional = append(positional, a)
			continue
		}
		f := fl.Lookup(name)
		if f == nil {
			if first, _ := utf8.DecodeRuneInString(name); isLetter(first) {
				flags = append(flags, a) // unknown: fl.Parse says so
			} else {
				positional = append(positional, a)
			}
			continue
		}
		flags = append(flags, a)
		if !hasValue && !isBoolFlag(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, positional
}

// flagName is the name in "-name", "--name" or "--name=value"; ok is false
// for what cannot be a flag ("-", "x", "---x").
func flagName(a string) (name string, hasValue, ok bool) {
	if len(a) < 2 || a[0] != '-' {
		return "", false, false
	}
	name = a[1:]
	if name[0] == '-' {
		name = name[1:]
	}
	if name == "" || name[0] == '-' || name[0] == '=' {
		return "", false, false
	}
	name, _, hasValue = strings.Cut(name, "=")
	return name, hasValue, true
}

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// maxKeyShown is how many bytes of a key a message shows.
const maxKeyShown = 64

// keyString is how every message shows a key (or any argument that may be
// one): quoted, with binary bytes escaped (\x00, \n, \xff), and cut after
// maxKeyShown bytes with its full length, so a 70,000-byte key is one short
// line on stderr: "aaaa..."... (70000 bytes).
func keyString(k string) string {
	if len(k) <= maxKeyShown {
		return strconv.Quote(k)
	}
	cut := maxKeyShown
	// Do not cut a UTF-8 character in two (at most UTFMax-1 bytes back).
	for back := 0; back < utf8.UTFMax-1 && !utf8.RuneStart(k[cut]); back++ {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(k[:cut]), len(k))
}

// keysString shows several arguments, each as keyString does.
func keysString(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = keyString(a)
	}
	return "[" + strings.Join(q, " ") + "]"
}
