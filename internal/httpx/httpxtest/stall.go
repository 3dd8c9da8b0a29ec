// Package httpxtest holds loopback servers that misbehave the way a hung
// endpoint does, for the timeout tests of every client.
package httpxtest

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"testing"
)

// Stall says how a StallServer misbehaves.
type Stall int

const (
	// NoAnswer accepts the connection, reads the request and never
	// answers.
	NoAnswer Stall = iota
	// StallBody sends a 200 with JSON headers and the first byte of a
	// longer body, then nothing more.
	StallBody
)

// StallServer listens on loopback and misbehaves as mode says on every
// connection, plain HTTP. It returns its address ("127.0.0.1:port") and a
// counter of requests received. Connections are released when the test
// ends.
func StallServer(t testing.TB, mode Stall) (addr string, requests func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var (
		mu    sync.Mutex
		n     int
		conns []net.Conn
		wg    sync.WaitGroup
	)
	t.Cleanup(func() {
		close(done)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				mu.Lock()
				n++
				mu.Unlock()
				if mode == StallBody {
					c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"))
				}
				<-done
			}()
		}
	}()
	return ln.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}
