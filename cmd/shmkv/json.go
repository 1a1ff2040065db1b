package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"unicode/utf8"

	"github.com/shmkv/shmkv/store"
)

// Keys and values are bytes, and a JSON string holds only Unicode text: a
// key or value that is not valid UTF-8 would be changed by encoding it as a
// string (each bad byte becomes U+FFFD). The CLI's JSON therefore gives such
// bytes in standard base64, under a name that says so: "value_base64" in
// get --json, {"base64": "..."} in keys --json. Valid UTF-8 is always a
// plain string, so the common case reads naturally in jq.

// jsonString is s as a JSON string, with <, > and & left as they are.
// REQUIRES: s is valid UTF-8.
func jsonString(s []byte) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(string(s)) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// jsonField is `"name":"b"`, or `"name_base64":"..."` when b is not UTF-8.
func jsonField(name string, b []byte) string {
	if utf8.Valid(b) {
		return fmt.Sprintf("%q:%s", name, jsonString(b))
	}
	return fmt.Sprintf("%q:%q", name+"_base64", base64.StdEncoding.EncodeToString(b))
}

// writeKeysJSON writes keys as a JSON array, one key a line: a string, or
// {"base64": "..."} for a key that is not UTF-8.
func writeKeysJSON(w *bufio.Writer, keys [][]byte) {
	if len(keys) == 0 {
		w.WriteString("[]\n")
		return
	}
	w.WriteString("[\n")
	for i, k := range keys {
		w.WriteString("  ")
		if utf8.Valid(k) {
			w.Write(jsonString(k))
		} else {
			fmt.Fprintf(w, `{"base64": %q}`, base64.StdEncoding.EncodeToString(k))
		}
		if i < len(keys)-1 {
			w.WriteByte(',')
		}
		w.WriteByte('\n')
	}
	w.WriteString("]\n")
}

// statJSON is what stat --json prints: store.Stats, with Mode as the
// octal string people write ("0600") instead of its number (384).
type statJSON struct {
	store.Stats
	Mode string
}

func newStatJSON(st store.Stats) statJSON {
	return statJSON{Stats: st, Mode: modeString(st.Mode)}
}

// modeString is a permission in octal with a leading zero: "0600".
func modeString(m fs.FileMode) string { return fmt.Sprintf("%04o", uint32(m.Perm())) }
