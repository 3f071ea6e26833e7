package auditbuf

import (
	"bytes"
	"os"
	"testing"
)

// The README's Go example is examples/go/main.go, byte for byte (run-go-tests compiles
// and runs that file), as ffi/run-c-tests checks the C one.
func TestReadmeExampleIsExamplesGo(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../examples/go/main.go")
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]byte
	var block []byte
	inside := false
	for _, line := range bytes.SplitAfter(readme, []byte("\n")) {
		switch trimmed := bytes.TrimRight(line, "\n"); {
		case !inside && bytes.Equal(trimmed, []byte("```go")):
			inside, block = true, []byte{}
		case inside && bytes.Equal(trimmed, []byte("```")):
			inside = false
			blocks = append(blocks, block)
		case inside:
			block = append(block, line...)
		}
	}
	if len(blocks) != 1 {
		t.Fatalf("README.md has %d ```go blocks, want exactly 1 (the example)", len(blocks))
	}
	if !bytes.Equal(blocks[0], example) {
		t.Fatalf("README's Go example differs from examples/go/main.go:\n%s", blocks[0])
	}
}
