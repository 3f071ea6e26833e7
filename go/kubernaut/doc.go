// Package kubernaut is a drop-in replacement for kubernaut's pkg/audit, backed by
// auditbuf: the same AuditStore, NewBufferedStore, Config, DefaultConfig,
// RecommendedConfig, AuditEvent, NewAuditEvent, CommonEnvelope and NewEventData, so a
// kubernaut service switches by changing one import:
//
//	 import (
//	-	"github.com/jordigilh/kubernaut/pkg/audit"
//	+	audit "github.com/auditbuf/auditbuf/go/kubernaut"
//	 )
//
//	 // unchanged: NewOpenAPIClientAdapter only names the service here
//	 dsClient, err := audit.NewOpenAPIClientAdapter("http://datastorage-service:8080", 5*time.Second)
//	 auditStore, err := audit.NewBufferedStore(dsClient, audit.DefaultConfig(), "gateway", logger)
//	 …
//	 err = auditStore.StoreAudit(ctx, event)
//	 …
//	 err = auditStore.Close()
//
// and, where the client came from kubernaut's pkg/datastorage/client (the README's
// "Complete Example"), its constructor — plus one line to keep the metrics, since
// client_golang stays out of this package:
//
//	 func NewGateway(config *Config, logger *slog.Logger) (*Gateway, error) {
//	-	dsClient := client.NewDataStorageClient(config.DataStorageURL)
//	+	dsClient := audit.DataStorageURL(config.DataStorageURL)
//	 	auditStore, err := audit.NewBufferedStore(dsClient, audit.RecommendedConfig("gateway"), "gateway", logger)
//	 	…
//	+	prometheus.MustRegister(abprom.NewCollector(auditStore, "gateway"))
//
// The client parameter is not a DataStorage client that the store calls: the auditbuf
// library does the sending (in its flush thread), so the parameter names the DataStorage
// service's base URL (*OpenAPIClientAdapter, with its timeout, token file and CA), or is a
// BatchFunc for tests and transports of your own. The logger is kubernaut's logr.Logger or
// a *slog.Logger (anything with Info(msg, keysAndValues...)).
//
// What changes underneath: StoreAudit copies the event into the library's queue and
// returns (a few microseconds on a loaded 2-vCPU machine, see docs/performance.md; no JSON
// marshalling or OpenAPI validation per event: the library checks the JSON of EventData
// and the required fields as it encodes); batches
// hold at most 500 events (the server's limit); a 202 counts as delivered and is not sent
// again; a 413 splits the batch, a 400 is bisected to dead-letter only the bad events, 429
// and 5xx are retried with backoff and Retry-After; every event is counted (Stats), and
// Config.Store keeps events through outages and restarts. A store that is closed refuses
// events with an error wrapping auditbuf.ErrClosed instead of dropping them silently.
package kubernaut
