package memcache

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
)

// Limits of a user file.
const (
	// maxUserLine is the longest line of a user file, newline included (memcached's MAX_ENTRY_LEN).
	maxUserLine = 256
	// maxUsers bounds the entries of a user file.
	maxUsers = 10000
	// maxAuthToken bounds the "user password" data block of a text-protocol login.
	maxAuthToken = maxUserLine
)

// ErrBadUserFile: a user file does not have memcached's format.
var ErrBadUserFile = errors.New("memcache: bad user file")

// Users is who may use a server that requires authentication: memcached's authfile format, one
// "user:password" per line, the format of both its -Y authfile (text protocol) and its SASL password
// database (MEMCACHED_SASL_PWDB, binary protocol). Binary clients log in with SASL PLAIN, text and meta
// clients with memcached's -Y token (a set whose data block is "user password").
//
// A Users is read-only once made and safe for concurrent use.
type Users struct {
	byName map[string][sha256.Size]byte // password digests: compared in constant time
}

// ParseUsers reads a user file: lines of "user:password" (the password is the rest of the line, colons
// included; a CR before the newline is dropped); empty lines are skipped. A line without a colon, with an
// empty user name, longer than 255 bytes, or more than 10000 users, is an error naming the line.
func ParseUsers(r io.Reader) (*Users, error) {
	u := &Users{byName: make(map[string][sha256.Size]byte)}
	br := bufio.NewReaderSize(r, maxUserLine)
	for line := 1; ; line++ {
		s, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, fmt.Errorf("%w: line %d longer than %d bytes", ErrBadUserFile, line, maxUserLine-1)
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		s = trimEOL(s)
		if len(s) > 0 {
			i := bytes.IndexByte(s, ':')
			if i <= 0 {
				return nil, fmt.Errorf("%w: line %d: want user:password", ErrBadUserFile, line)
			}
			if len(u.byName) >= maxUsers {
				return nil, fmt.Errorf("%w: more than %d users", ErrBadUserFile, maxUsers)
			}
			u.byName[string(s[:i])] = sha256.Sum256(s[i+1:])
		}
		if err == io.EOF {
			break
		}
	}
	if len(u.byName) == 0 {
		return nil, fmt.Errorf("%w: no users", ErrBadUserFile)
	}
	return u, nil
}

// LoadUsers reads the user file at path (see ParseUsers).
func LoadUsers(path string) (*Users, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("memcache: user file: %w", err)
	}
	defer f.Close()
	u, err := ParseUsers(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return u, nil
}

// Check reports whether user may log in with password. The comparison of passwords takes the same time
// whatever they hold.
func (u *Users) Check(user, password []byte) bool {
	if u == nil {
		return false
	}
	want, ok := u.byName[string(user)]
	got := sha256.Sum256(password)
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1 && ok
}

// parseSASLPlain splits a SASL PLAIN message (RFC 4616): [authzid] NUL authcid NUL passwd.
func parseSASLPlain(msg []byte) (authzid, user, password []byte, ok bool) {
	i := bytes.IndexByte(msg, 0)
	if i < 0 {
		return nil, nil, nil, false
	}
	j := bytes.IndexByte(msg[i+1:], 0)
	if j < 0 {
		return nil, nil, nil, false
	}
	authzid, user, password = msg[:i], msg[i+1:i+1+j], msg[i+2+j:]
	return authzid, user, password, len(user) > 0
}

// parseAuthToken splits the data block of a text-protocol login: "user password" (memcached's -Y).
func parseAuthToken(b []byte) (user, password []byte, ok bool) {
	user, i := nextToken(b, 0)
	password, _ = nextToken(b, i)
	return user, password, user != nil && password != nil
}
