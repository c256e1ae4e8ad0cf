// Package memsizeui keeps the two methods geth 1.13.15 calls (Add in cmd/geth, ServeHTTP when
// internal/debug mounts /memsize/) so geth builds on current Go; the page reports it is unavailable.
package memsizeui

import "net/http"

// Handler is a no-op stand-in for memsize's web UI handler.
type Handler struct{}

// Add would register a root object for size scans; the stub does not scan.
func (h *Handler) Add(name string, v interface{}) {}

// ServeHTTP answers that memory-size scanning is not built in.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "memsize is not built into this geth", http.StatusNotImplemented)
}
