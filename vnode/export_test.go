package vnode

import "github.com/asynkron/protoactor-go/actor"

// Hooks for the external tests (package vnode_test). Those run the framework with the KV behaviour, and
// package kv imports vnode, so they cannot live in package vnode itself.

// System is the actor system the manager runs in.
func (m *Manager) System() *actor.ActorSystem { return m.system }

// SupervisorPID is the vnode supervisor's actor.
func (m *Manager) SupervisorPID() *actor.PID { return m.pid }

// SetOnEscalate replaces ManagerConfig.OnEscalate.
func (m *Manager) SetOnEscalate(f func(error)) { m.cfg.OnEscalate = f }

// RetireVnodeNotice is the notice Retire sends the manager before it retires the vnode pid.
func RetireVnodeNotice(pid *actor.PID) any { return &retireVnode{pid: pid} }

// RetireCommand is the command Retire sends the vnode.
func RetireCommand() any { return &retire{} }

// InCall says whether the vnode of s is handling a message now (a Behaviour method may run).
func (s Self) InCall() bool { return s.inc != nil && s.inc.inCall.Load() }
