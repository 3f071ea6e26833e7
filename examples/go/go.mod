module github.com/auditbuf/auditbuf/examples/go

go 1.24

require github.com/auditbuf/auditbuf/go v0.0.0

replace github.com/auditbuf/auditbuf/go => ../../go
