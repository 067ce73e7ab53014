package wire

// Encoders append to a caller's buffer and parsers return views into the
// caller's body buffer: nothing here allocates per page.

// Hello opens a session: it names the namespace to attach to, the page size
// the client expects and the token (empty if none).
type Hello struct {
	PageSize  uint32
	Namespace []byte
	Token     []byte
}

// AppendHello appends a complete Hello frame.
func AppendHello(dst []byte, h Hello) ([]byte, error) {
	if err := checkName(h.Namespace); err != nil {
		return dst, err
	}
	if len(h.Token) > MaxToken || h.PageSize == 0 {
		return dst, ErrBadField
	}
	start := len(dst)
	dst = StartFrame(dst, THello, 0)
	dst = le.AppendUint32(dst, h.PageSize)
	dst = le.AppendUint16(dst, uint16(len(h.Namespace)))
	dst = le.AppendUint16(dst, uint16(len(h.Token)))
	dst = append(dst, h.Namespace...)
	dst = append(dst, h.Token...)
	return dst, EndFrame(dst, start)
}

// ParseHello decodes a Hello body. The returned slices alias body.
func ParseHello(body []byte) (Hello, error) {
	if len(body) < 8 {
		return Hello{}, ErrTruncated
	}
	h := Hello{PageSize: le.Uint32(body)}
	nl, tl := int(le.Uint16(body[4:])), int(le.Uint16(body[6:]))
	if len(body) != 8+nl+tl {
		return Hello{}, ErrBadLength
	}
	h.Namespace = body[8 : 8+nl]
	h.Token = body[8+nl:]
	if err := checkName(h.Namespace); err != nil {
		return Hello{}, err
	}
	if h.PageSize == 0 || tl > MaxToken {
		return Hello{}, ErrBadField
	}
	return h, nil
}

// checkName accepts 1..MaxNamespace bytes of printable ASCII without spaces.
func checkName(n []byte) error {
	if len(n) == 0 || len(n) > MaxNamespace {
		return ErrBadName
	}
	for _, c := range n {
		if c <= ' ' || c >= 0x7f {
			return ErrBadName
		}
	}
	return nil
}

// Welcome answers a Hello: the memnode's boot epoch (random, chosen at start;
// a changed epoch means the memnode restarted and lost its pages), its
// capacity and use in pages, the largest body it accepts, and its page size.
type Welcome struct {
	Epoch, Capacity, Used uint64
	MaxBody, PageSize     uint32
}

// WelcomeSize is the body length of a Welcome frame.
const WelcomeSize = 32

// AppendWelcome appends a complete Welcome frame.
func AppendWelcome(dst []byte, w Welcome) []byte {
	dst = AppendHeader(dst, Header{Version: Version, Type: TWelcome, Len: WelcomeSize})
	dst = le.AppendUint64(dst, w.Epoch)
	dst = le.AppendUint64(dst, w.Capacity)
	dst = le.AppendUint64(dst, w.Used)
	dst = le.AppendUint32(dst, w.MaxBody)
	return le.AppendUint32(dst, w.PageSize)
}

// ParseWelcome decodes a Welcome body.
func ParseWelcome(body []byte) (Welcome, error) {
	if len(body) != WelcomeSize {
		return Welcome{}, ErrBadLength
	}
	w := Welcome{
		Epoch: le.Uint64(body), Capacity: le.Uint64(body[8:]), Used: le.Uint64(body[16:]),
		MaxBody: le.Uint32(body[24:]), PageSize: le.Uint32(body[28:]),
	}
	if w.PageSize == 0 || w.MaxBody < HeaderSize {
		return Welcome{}, ErrBadField
	}
	return w, nil
}

// IDs is a decoded list of page ids (the body of Read and Free), a view into
// the body buffer.
type IDs struct{ b []byte }

// Len returns the number of ids.
func (l IDs) Len() int { return len(l.b) / 8 }

// At returns the i-th id.
func (l IDs) At(i int) uint64 { return le.Uint64(l.b[8*i:]) }

// ParseIDs decodes the body of a Read or Free request.
func ParseIDs(body []byte) (IDs, error) {
	if len(body) < 4 {
		return IDs{}, ErrTruncated
	}
	n := uint64(le.Uint32(body))
	if uint64(len(body)-4) != 8*n {
		return IDs{}, ErrBadLength
	}
	return IDs{body[4:]}, nil
}

// AppendCount appends the u32 count that opens Read, Write, ReadReply,
// WriteReply and Free bodies.
func AppendCount(dst []byte, n int) []byte { return le.AppendUint32(dst, uint32(n)) }

// AppendID appends one page id of a Read or Free body.
func AppendID(dst []byte, id uint64) []byte { return le.AppendUint64(dst, id) }

// AppendWriteEntry appends one page of a Write body.
func AppendWriteEntry(dst []byte, id uint64, sum uint32, data []byte) []byte {
	dst = le.AppendUint64(dst, id)
	dst = le.AppendUint32(dst, sum)
	dst = le.AppendUint32(dst, 0)
	return append(dst, data...)
}

// Pages is a decoded Write body, a view into the body buffer.
type Pages struct {
	b        []byte
	pageSize int
}

// Len returns the number of pages.
func (p Pages) Len() int { return len(p.b) / (EntryHeaderSize + p.pageSize) }

// At returns the i-th page: its id, the checksum the sender claims and the
// data (aliasing the body).
func (p Pages) At(i int) (id uint64, sum uint32, data []byte) {
	e := p.b[i*(EntryHeaderSize+p.pageSize):]
	return le.Uint64(e), le.Uint32(e[8:]), e[EntryHeaderSize : EntryHeaderSize+p.pageSize]
}

// ParseWrite decodes a Write body of pages of pageSize bytes. It checks the
// layout, not the checksums: the receiver verifies each page itself.
func ParseWrite(body []byte, pageSize int) (Pages, error) {
	if pageSize <= 0 {
		return Pages{}, ErrBadField
	}
	if len(body) < 4 {
		return Pages{}, ErrTruncated
	}
	n := uint64(le.Uint32(body))
	if uint64(len(body)-4) != n*uint64(EntryHeaderSize+pageSize) {
		return Pages{}, ErrBadLength
	}
	p := Pages{b: body[4:], pageSize: pageSize}
	for i := 0; i < p.Len(); i++ {
		if le.Uint32(p.b[i*(EntryHeaderSize+pageSize)+12:]) != 0 {
			return Pages{}, ErrBadField
		}
	}
	return p, nil
}

// AppendReadEntry appends one page of a ReadReply body: with data when status
// is OK, without otherwise.
func AppendReadEntry(dst []byte, id uint64, status Code, sum uint32, data []byte) []byte {
	dst = le.AppendUint64(dst, id)
	dst = append(dst, byte(status), 0, 0, 0)
	dst = le.AppendUint32(dst, sum)
	if status == OK {
		dst = append(dst, data...)
	}
	return dst
}

// ReadEntry is one page of a ReadReply. Data aliases the body and is nil
// unless Status is OK.
type ReadEntry struct {
	ID     uint64
	Status Code
	Sum    uint32
	Data   []byte
}

// ReadReply is a decoded ReadReply body, validated by ParseReadReply; iterate
// it with Next.
type ReadReply struct {
	n        int
	b        []byte
	pageSize int
}

// Len returns the number of entries.
func (r *ReadReply) Len() int { return r.n }

// Next returns the next entry, or false after the last.
func (r *ReadReply) Next() (ReadEntry, bool) {
	if len(r.b) < EntryHeaderSize {
		return ReadEntry{}, false
	}
	e := ReadEntry{ID: le.Uint64(r.b), Status: Code(r.b[8]), Sum: le.Uint32(r.b[12:])}
	r.b = r.b[EntryHeaderSize:]
	if e.Status == OK {
		e.Data = r.b[:r.pageSize]
		r.b = r.b[r.pageSize:]
	}
	return e, true
}

// ParseReadReply decodes and validates a ReadReply body of pages of pageSize
// bytes. Statuses must be OK, NotFound or Corrupt.
func ParseReadReply(body []byte, pageSize int) (ReadReply, error) {
	if pageSize <= 0 {
		return ReadReply{}, ErrBadField
	}
	if len(body) < 4 {
		return ReadReply{}, ErrTruncated
	}
	n := int(le.Uint32(body))
	b := body[4:]
	for i := 0; i < n; i++ {
		if len(b) < EntryHeaderSize {
			return ReadReply{}, ErrTruncated
		}
		if b[9]|b[10]|b[11] != 0 {
			return ReadReply{}, ErrBadField
		}
		switch Code(b[8]) {
		case OK:
			if len(b) < EntryHeaderSize+pageSize {
				return ReadReply{}, ErrTruncated
			}
			b = b[EntryHeaderSize+pageSize:]
		case CodeNotFound, CodeCorrupt:
			b = b[EntryHeaderSize:]
		default:
			return ReadReply{}, ErrBadStatus
		}
	}
	if len(b) != 0 {
		return ReadReply{}, ErrBadLength
	}
	return ReadReply{n: n, b: body[4:], pageSize: pageSize}, nil
}

// Statuses is a decoded WriteReply body: one status per page of the request,
// in request order.
type Statuses struct{ b []byte }

// Len returns the number of statuses.
func (s Statuses) Len() int { return len(s.b) }

// At returns the i-th status.
func (s Statuses) At(i int) Code { return Code(s.b[i]) }

// ParseWriteReply decodes a WriteReply body. Statuses must be OK, Full or
// Corrupt.
func ParseWriteReply(body []byte) (Statuses, error) {
	if len(body) < 4 {
		return Statuses{}, ErrTruncated
	}
	n := uint64(le.Uint32(body))
	if uint64(len(body)-4) != n {
		return Statuses{}, ErrBadLength
	}
	for _, c := range body[4:] {
		switch Code(c) {
		case OK, CodeFull, CodeCorrupt:
		default:
			return Statuses{}, ErrBadStatus
		}
	}
	return Statuses{body[4:]}, nil
}

// AppendStatus appends one page status of a WriteReply body.
func AppendStatus(dst []byte, c Code) []byte { return append(dst, byte(c)) }

// AppendFreeReply appends a complete FreeReply frame.
func AppendFreeReply(dst []byte, id uint64, freed uint32) []byte {
	dst = AppendHeader(dst, Header{Version: Version, Type: TFreeReply, Len: 4, ID: id})
	return le.AppendUint32(dst, freed)
}

// ParseFreeReply decodes a FreeReply body: the number of pages that were
// present and are now freed.
func ParseFreeReply(body []byte) (uint32, error) {
	if len(body) != 4 {
		return 0, ErrBadLength
	}
	return le.Uint32(body), nil
}

// Stat is the body of a StatReply: the memnode's capacity and use in pages,
// the pages held in the caller's namespace, and the boot epoch.
type Stat struct {
	Capacity, Used, NamespacePages, Epoch uint64
}

// StatSize is the body length of a StatReply.
const StatSize = 32

// AppendStatReply appends a complete StatReply frame.
func AppendStatReply(dst []byte, id uint64, s Stat) []byte {
	dst = AppendHeader(dst, Header{Version: Version, Type: TStatReply, Len: StatSize, ID: id})
	dst = le.AppendUint64(dst, s.Capacity)
	dst = le.AppendUint64(dst, s.Used)
	dst = le.AppendUint64(dst, s.NamespacePages)
	return le.AppendUint64(dst, s.Epoch)
}

// ParseStatReply decodes a StatReply body.
func ParseStatReply(body []byte) (Stat, error) {
	if len(body) != StatSize {
		return Stat{}, ErrBadLength
	}
	return Stat{le.Uint64(body), le.Uint64(body[8:]), le.Uint64(body[16:]), le.Uint64(body[24:])}, nil
}

// AppendError appends a complete Error frame answering request id. msg is
// cut to MaxErrorMsg bytes.
func AppendError(dst []byte, id uint64, c Code, msg string) []byte {
	if len(msg) > MaxErrorMsg {
		msg = msg[:MaxErrorMsg]
	}
	dst = AppendHeader(dst, Header{Version: Version, Type: TError, Len: uint32(4 + len(msg)), ID: id})
	dst = le.AppendUint16(dst, uint16(c))
	dst = le.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...)
}

// ParseError decodes an Error body into a *RemoteError (allocated: errors are
// off the hot path).
func ParseError(body []byte) (*RemoteError, error) {
	if len(body) < 4 {
		return nil, ErrTruncated
	}
	c, n := Code(le.Uint16(body)), int(le.Uint16(body[2:]))
	if len(body) != 4+n || n > MaxErrorMsg {
		return nil, ErrBadLength
	}
	if c == OK {
		return nil, ErrBadStatus
	}
	return &RemoteError{Code: c, Msg: string(body[4:])}, nil
}
