// Package layers holds the test of gokai's import rules (docs/architecture.md, "What each package may
// import"): the ring, storage and supervision at the bottom, the runtime (vnode, coordinator, handoff) that
// never imports a service, services (kv, examples) that never import the node, and the node that imports no
// service. The test reads every package's imports (test files aside) from its source, so a change that
// breaks a rule fails `go test ./...` with the package and the import that broke it.
package layers
