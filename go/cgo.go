package auditbuf

// Every call into C and the only `import "C"` of the package. The rest of the package is
// plain Go: it sees a native handle with Go-typed methods, never a C type.
//
// Memory rules (cgocheck): Go memory is passed to C only for the duration of a call, and
// only memory that holds no Go pointers — byte buffers, the flat event (integers only)
// and its spans, the flat CADF event and its lists (integers only; the shim builds the
// ABI's struct of views on the C side). The `noescape` annotations let that memory stay
// on the stack, and `nocallback` marks the record calls, which never call back into Go on
// the calling thread (the sink callback runs on the library's flush thread).

/*
#cgo CFLAGS: -I${SRCDIR}/../include -I${SRCDIR}
#cgo LDFLAGS: ${SRCDIR}/../target/release/libauditbuf_ffi.a -lpthread -ldl -lm -lrt
#cgo noescape abgo_record_json
#cgo nocallback abgo_record_json
#cgo noescape abgo_record_json_batch
#cgo nocallback abgo_record_json_batch
#cgo noescape abgo_record_flat
#cgo nocallback abgo_record_flat
#cgo noescape abgo_record_flat_batch
#cgo nocallback abgo_record_flat_batch
#cgo noescape abgo_record_cadf
#cgo nocallback abgo_record_cadf
#cgo noescape auditbuf_pipeline_stats
#cgo nocallback auditbuf_pipeline_stats
#cgo noescape abgo_flush
#cgo noescape abgo_in_sink
#cgo nocallback abgo_in_sink
#cgo noescape abgo_close
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// native is the C handle. The zero value is a NULL handle, which every call refuses
// with AUDITBUF_NULL_PARAMETER.
type native struct {
	p *C.auditbuf_pipeline
}

func init() {
	if unsafe.Sizeof(flatEvent{}) != uintptr(C.sizeof_auditbuf_flat_event) ||
		unsafe.Sizeof(flatSpan{}) != uintptr(C.sizeof_auditbuf_span) ||
		C.AUDITBUF_FLAT_VERSION != flatVersion || C.AUDITBUF_FLAT_STRINGS != flatStrings {
		panic(fmt.Sprintf("auditbuf: flat event layout differs from auditbuf.h (%d/%d bytes)",
			unsafe.Sizeof(flatEvent{}), C.sizeof_auditbuf_flat_event))
	}
	if unsafe.Sizeof(cadfFlatEvent{}) != uintptr(C.sizeof_abgo_cadf_event) ||
		unsafe.Sizeof(cadfFlatResource{}) != uintptr(C.sizeof_abgo_cadf_resource) ||
		unsafe.Sizeof(cadfFlatAddress{}) != uintptr(C.sizeof_abgo_cadf_address) ||
		unsafe.Sizeof(cadfFlatAttachment{}) != uintptr(C.sizeof_abgo_cadf_attachment) {
		panic(fmt.Sprintf("auditbuf: flat CADF event layout differs from shim.h (%d/%d bytes)",
			unsafe.Sizeof(cadfFlatEvent{}), C.sizeof_abgo_cadf_event))
	}
}

// empty stands in for the data pointer of an empty slice: the ABI wants a non-NULL
// pointer even for zero bytes.
var empty [1]byte

func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return (*C.uint8_t)(unsafe.Pointer(&empty[0]))
	}
	return (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(b)))
}

// message takes ownership of a message from a shim call: copies and frees it.
func message(m *C.char) string {
	if m == nil {
		return ""
	}
	s := C.GoString(m)
	C.free(unsafe.Pointer(m))
	return s
}

// newNative creates a pipeline from a configuration document; with a non-zero sink
// handle, its sink is the Go callback behind that handle.
func newNative(config []byte, sink uintptr) (native, uint32, string) {
	var p *C.auditbuf_pipeline
	var msg *C.char
	cfg := (*C.char)(unsafe.Pointer(bytesPtr(config)))
	var s C.uint32_t
	if sink == 0 {
		s = C.abgo_new(cfg, C.size_t(len(config)), &p, &msg)
	} else {
		s = C.abgo_new_callback(cfg, C.size_t(len(config)), C.uintptr_t(sink), &p, &msg)
	}
	return native{p}, uint32(s), message(msg)
}

// checkEnvConfig asks the library what Rust's Config::from_env says of these values of
// ${prefix}_CONFIG and ${prefix}_BACKING_STORE (nil: the variable is unset): status 0, or
// the status and the library's message.
func checkEnvConfig(prefix string, config, store *string) (uint32, string) {
	view := func(v *string) (*C.char, C.size_t) {
		if v == nil {
			return nil, 0
		}
		b := []byte(*v)
		return (*C.char)(unsafe.Pointer(bytesPtr(b))), C.size_t(len(b))
	}
	p, pl := view(&prefix)
	c, cl := view(config)
	s, sl := view(store)
	var msg *C.char
	status := C.abgo_config_check_env(p, pl, c, cl, s, sl, &msg)
	return uint32(status), message(msg)
}

func (n native) recordJSON(b []byte) (uint32, string) {
	var msg *C.char
	s := C.abgo_record_json(n.p, bytesPtr(b), C.size_t(len(b)), &msg)
	if s == 0 {
		return 0, ""
	}
	return uint32(s), message(msg)
}

func (n native) recordJSONBatch(buf []byte, spans []flatSpan) (int, uint32, string) {
	var msg *C.char
	var taken C.size_t
	sp := (*C.auditbuf_span)(unsafe.Pointer(unsafe.SliceData(spans)))
	s := C.abgo_record_json_batch(n.p, bytesPtr(buf), C.size_t(len(buf)), sp,
		C.size_t(len(spans)), &taken, &msg)
	if s == 0 {
		return int(taken), 0, ""
	}
	return int(taken), uint32(s), message(msg)
}

func (n native) recordFlat(ev *flatEvent, buf []byte) (uint32, string) {
	var msg *C.char
	s := C.abgo_record_flat(n.p, (*C.auditbuf_flat_event)(unsafe.Pointer(ev)), bytesPtr(buf),
		C.size_t(len(buf)), &msg)
	if s == 0 {
		return 0, ""
	}
	return uint32(s), message(msg)
}

func (n native) recordFlatBatch(evs []flatEvent, buf []byte) (int, uint32, string) {
	var msg *C.char
	var taken C.size_t
	ev := (*C.auditbuf_flat_event)(unsafe.Pointer(unsafe.SliceData(evs)))
	s := C.abgo_record_flat_batch(n.p, ev, C.size_t(len(evs)), bytesPtr(buf), C.size_t(len(buf)),
		&taken, &msg)
	if s == 0 {
		return int(taken), 0, ""
	}
	return int(taken), uint32(s), message(msg)
}

func (n native) recordCADF(ev *cadfFlatEvent, addresses []cadfFlatAddress,
	attachments []cadfFlatAttachment, buf []byte) (uint32, string) {
	var msg *C.char
	s := C.abgo_record_cadf(n.p, (*C.abgo_cadf_event)(unsafe.Pointer(ev)),
		(*C.abgo_cadf_address)(unsafe.Pointer(unsafe.SliceData(addresses))), C.size_t(len(addresses)),
		(*C.abgo_cadf_attachment)(unsafe.Pointer(unsafe.SliceData(attachments))), C.size_t(len(attachments)),
		bytesPtr(buf), C.size_t(len(buf)), &msg)
	if s == 0 {
		return 0, ""
	}
	return uint32(s), message(msg)
}

func (n native) flush(timeoutMs uint64) (Report, uint32, string) {
	var r C.auditbuf_report
	r.size = C.sizeof_auditbuf_report
	var msg *C.char
	s := C.abgo_flush(n.p, C.uint64_t(timeoutMs), &r, &msg)
	return reportOf(&r), uint32(s), message(msg)
}

func (n native) close(timeoutMs uint64) (Report, uint32, string) {
	var r C.auditbuf_report
	r.size = C.sizeof_auditbuf_report
	var msg *C.char
	s := C.abgo_close(n.p, C.uint64_t(timeoutMs), &r, &msg)
	return reportOf(&r), uint32(s), message(msg)
}

// inSink reports whether the caller runs inside the Go sink of handle (on its flush
// thread), where nothing may wait for that thread.
func inSink(handle uintptr) bool {
	return C.abgo_in_sink(C.uintptr_t(handle)) != 0
}

// free releases the handle; it must be the last call on it.
func (n native) free() {
	C.auditbuf_pipeline_free(n.p)
}

func (n native) stats() Stats {
	var s C.auditbuf_stats
	s.size = C.sizeof_auditbuf_stats
	if C.auditbuf_pipeline_stats(n.p, &s) != 0 {
		return Stats{}
	}
	return statsOf(&s)
}

// metricsText is the pipeline's Prometheus text (auditbuf_pipeline_metrics).
func (n native) metricsText() string {
	return text(func(buf *C.char, size C.size_t, need *C.size_t) C.auditbuf_status {
		return C.auditbuf_pipeline_metrics(n.p, buf, size, need)
	})
}

// lastError is the pipeline's last send, store or rejection error
// (auditbuf_pipeline_last_error), "" when there was none.
func (n native) lastError() string {
	return text(func(buf *C.char, size C.size_t, need *C.size_t) C.auditbuf_status {
		return C.auditbuf_pipeline_last_error(n.p, buf, size, need)
	})
}

// text is what write gives, asked for its length first; the text may grow between the
// calls (by a few digits, or a newer error), hence the margin and the retry.
func text(write func(buf *C.char, size C.size_t, need *C.size_t) C.auditbuf_status) string {
	var need C.size_t
	if write(nil, 0, &need) != 0 {
		return ""
	}
	for {
		buf := make([]byte, int(need)+256)
		if write((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &need) != 0 {
			return ""
		}
		if int(need) < len(buf) {
			return string(buf[:need])
		}
	}
}

// forkProbe forks; the child records one event and reports its status (tests only).
func (n native) forkProbe() uint32 {
	return uint32(C.abgo_fork_probe(n.p))
}

func statusName(status uint32) string {
	return C.GoString(C.auditbuf_status_name(C.auditbuf_status(status)))
}

func libraryVersion() string {
	return C.GoString(C.auditbuf_version())
}

//export abgoSink
func abgoSink(handle C.uintptr_t, events *C.auditbuf_bytes, n C.size_t) C.uint32_t {
	// Copy the batch into Go memory before anything else: the views are valid only
	// during this call.
	views := unsafe.Slice(events, int(n))
	total := 0
	for i := range views {
		total += int(views[i].len)
	}
	buf := make([]byte, total)
	batch := make([][]byte, len(views))
	off := 0
	for i := range views {
		l := int(views[i].len)
		if l > 0 {
			copy(buf[off:off+l], unsafe.Slice((*byte)(unsafe.Pointer(views[i].ptr)), l))
		}
		batch[i] = buf[off : off+l : off+l]
		off += l
	}
	return C.uint32_t(deliver(uintptr(handle), batch))
}

func reportOf(r *C.auditbuf_report) Report {
	return Report{
		Completed: r.completed != 0,
		Left:      uint64(r.left),
		Stats:     statsOf(&r.stats),
	}
}

func statsOf(s *C.auditbuf_stats) Stats {
	return Stats{
		Recorded:     uint64(s.recorded),
		Recovered:    uint64(s.recovered),
		Delivered:    uint64(s.delivered),
		DeadLettered: uint64(s.dead_lettered),
		Failed:       uint64(s.failed),
		Dropped: Dropped{
			Shutdown:  uint64(s.dropped_shutdown),
			StoreFull: uint64(s.dropped_store_full),
			Damaged:   uint64(s.dropped_damaged),
			Oldest:    uint64(s.dropped_oldest),
		},
		InFlight: uint64(s.in_flight),
		Queued:   uint64(s.queued),
		Stored:   uint64(s.stored),
		Sends:    uint64(s.sends),
		Retries:  uint64(s.retries),
		Rejected: Rejected{
			QueueFull:    uint64(s.rejected_queue_full),
			BlockTimeout: uint64(s.rejected_block_timeout),
			Closed:       uint64(s.rejected_closed),
			InvalidUTF8:  uint64(s.rejected_invalid_utf8),
			InvalidJSON:  uint64(s.rejected_invalid_json),
			NotAnObject:  uint64(s.rejected_not_an_object),
			TooLarge:     uint64(s.rejected_too_large),
			MissingField: uint64(s.rejected_missing_field),
			InvalidField: uint64(s.rejected_invalid_field),
			Serialize:    uint64(s.rejected_serialize),
			StoreFull:    uint64(s.rejected_store_full),
			StoreError:   uint64(s.rejected_store_error),
		},
		Redelivered:          uint64(s.redelivered),
		EndpointRefusals:     uint64(s.endpoint_refusals),
		BatchesFailed:        uint64(s.batches_failed),
		GapMarkers:           uint64(s.gap_markers),
		DeadLetteredTooLarge: uint64(s.dead_lettered_too_large),
		DeadLetteredByStore:  uint64(s.dead_lettered_by_store),
	}
}
