// Package h1 is the HTTP/1.1 message handling of lb's FastServer: a
// parser of request and response heads and of bodies (length, chunked,
// until the end of the connection) that reads into buffers each
// connection reuses, so that a kept-alive request costs no allocation;
// the writing of the fields it passes on; and socket reads and writes
// made as raw system calls where the system allows.
//
// It knows nothing of pools, backends or balancing: what to do with a
// message is lb's. Its parser is checked against net/http's by the
// differential fuzz tests FuzzParseRequest and FuzzParseResponse; where
// it is stricter, parse.go says so and why.
//
// h1 imports the standard library only, and no gearbox package.
package h1
