package membership

import (
	"errors"
	"fmt"
)

// Gossip key rotation (memberlist's keyring; the steps of consul keyring and riak's): install the new key on
// every node (it decrypts with every installed key), make it primary on every node (it encrypts with the
// primary), then remove the old one. Every node keeps understanding every other at each step. The node
// layer runs each step on every member and saves the result.

// ErrNoKeyring: gossip runs without encryption (no keys were configured).
var ErrNoKeyring = errors.New("membership: gossip is not encrypted")

// Keys returns the primary key and every installed key (primary included).
func (g *Gossip) Keys() (primary []byte, all [][]byte, err error) {
	kr := g.keys
	if kr == nil {
		return nil, nil, ErrNoKeyring
	}
	return kr.GetPrimaryKey(), kr.GetKeys(), nil
}

// InstallKey adds key (it decrypts from now on).
func (g *Gossip) InstallKey(key []byte) error {
	return g.keyring(func(k keyring) error { return k.AddKey(key) })
}

// UseKey makes an installed key the primary (it encrypts from now on).
func (g *Gossip) UseKey(key []byte) error {
	return g.keyring(func(k keyring) error { return k.UseKey(key) })
}

// RemoveKey removes a key that is not the primary.
func (g *Gossip) RemoveKey(key []byte) error {
	return g.keyring(func(k keyring) error { return k.RemoveKey(key) })
}

// keyring is the part of memberlist's Keyring used here.
type keyring interface {
	AddKey([]byte) error
	UseKey([]byte) error
	RemoveKey([]byte) error
}

func (g *Gossip) keyring(f func(keyring) error) error {
	kr := g.keys
	if kr == nil {
		return ErrNoKeyring
	}
	if err := f(kr); err != nil {
		return fmt.Errorf("membership: keyring: %w", err)
	}
	return nil
}
