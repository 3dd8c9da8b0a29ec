package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/defenderharvester/defenderharvester/internal/record"
)

// The spool keeps batches that one output could not take while the others
// did, so a broken output neither loses data nor holds back the rest. It
// lives in the state file: a batch is spooled in one bbolt transaction
// (fsync'd), so it survives kill -9.
//
// Layout: spool/<output>/{batches/ seq → batch, bytes → total}.
var (
	bucketSpool   = []byte("spool")
	bucketBatches = []byte("batches")
	keyBytes      = []byte("bytes")
)

// ErrSpoolFull is returned when spooling would exceed the output's limit.
var ErrSpoolFull = errors.New("spool full")

// SpooledBatch is one batch waiting for an output.
type SpooledBatch struct {
	Seq     uint64
	Table   string
	Records []record.Record
}

// SpoolInfo is an output's backlog.
type SpoolInfo struct {
	Output  string
	Batches int
	Records int
	Bytes   int64
}

type spooledRecord struct {
	Tenant      string          `json:"t"`
	Source      string          `json:"s"`
	ID          string          `json:"i"`
	Time        time.Time       `json:"tm"`
	HarvestedAt time.Time       `json:"h"`
	Raw         json.RawMessage `json:"r"`
	Extra       []spooledField  `json:"x,omitempty"`
}

type spooledField struct {
	Key   string          `json:"k"`
	Value json.RawMessage `json:"v"`
}

type spooledBatch struct {
	Table   string          `json:"table"`
	Records []spooledRecord `json:"records"`
}

// SpoolPut stores recs (all of table) for output. maxBytes > 0 bounds the
// output's whole spool; beyond it ErrSpoolFull is returned and nothing is
// stored, so the caller fails the source and the data stays at the source.
func (s *Store) SpoolPut(output, table string, recs []record.Record, maxBytes int64) error {
	if len(recs) == 0 {
		return nil
	}
	b := spooledBatch{Table: table, Records: make([]spooledRecord, len(recs))}
	for i, r := range recs {
		sr := spooledRecord{Tenant: r.Tenant, Source: r.Source, ID: r.ID, Time: r.Time, HarvestedAt: r.HarvestedAt, Raw: r.Raw}
		for _, f := range r.Extra {
			sr.Extra = append(sr.Extra, spooledField{Key: f.Key, Value: f.Value})
		}
		b.Records[i] = sr
	}
	body, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("spool for output %s: %w", output, err)
	}
	// uvarint(record count) ‖ JSON: the count is readable without decoding.
	data := append(binary.AppendUvarint(nil, uint64(len(recs))), body...)
	return s.update("spooling a batch", func(tx *bolt.Tx) error {
		ob, err := spoolBucket(tx, output, true)
		if err != nil {
			return err
		}
		total := int64(0)
		if v := ob.Get(keyBytes); len(v) == 8 {
			total = int64(binary.BigEndian.Uint64(v))
		}
		if maxBytes > 0 && total+int64(len(data)) > maxBytes {
			return fmt.Errorf("%w: output %s already holds %d bytes of undelivered records (limit %d); fix the output or raise its spool limit",
				ErrSpoolFull, output, total, maxBytes)
		}
		batches := ob.Bucket(bucketBatches)
		seq, err := batches.NextSequence()
		if err != nil {
			return err
		}
		if err := batches.Put(binary.BigEndian.AppendUint64(nil, seq), data); err != nil {
			return err
		}
		return ob.Put(keyBytes, binary.BigEndian.AppendUint64(nil, uint64(total+int64(len(data)))))
	})
}

// SpoolNext returns the oldest batch spooled for output after seq (0 for
// the first), or ok=false when there is none. Reading one batch at a time
// keeps memory bounded and no transaction open while the caller sends.
func (s *Store) SpoolNext(output string, after uint64) (b SpooledBatch, ok bool, err error) {
	err = s.view("reading the spool", func(tx *bolt.Tx) error {
		ob, err := spoolBucket(tx, output, false)
		if err != nil || ob == nil {
			return err
		}
		c := ob.Bucket(bucketBatches).Cursor()
		k, v := c.Seek(binary.BigEndian.AppendUint64(nil, after+1))
		if k == nil {
			return nil
		}
		if len(k) != 8 {
			return fmt.Errorf("spool of output %s has a malformed key: %w", output, ErrCorrupt)
		}
		_, n := binary.Uvarint(v)
		if n <= 0 {
			return fmt.Errorf("spool of output %s, batch %d: %w", output, binary.BigEndian.Uint64(k), ErrCorrupt)
		}
		var sb spooledBatch
		if err := json.Unmarshal(v[n:], &sb); err != nil {
			return fmt.Errorf("spool of output %s, batch %d: %w (%v)", output, binary.BigEndian.Uint64(k), ErrCorrupt, err)
		}
		b = SpooledBatch{Seq: binary.BigEndian.Uint64(k), Table: sb.Table, Records: make([]record.Record, len(sb.Records))}
		for i, r := range sb.Records {
			rec := record.Record{Tenant: r.Tenant, Source: r.Source, Table: sb.Table, ID: r.ID, Time: r.Time, HarvestedAt: r.HarvestedAt, Raw: r.Raw}
			for _, f := range r.Extra {
				rec.Extra = append(rec.Extra, record.Field{Key: f.Key, Value: f.Value})
			}
			b.Records[i] = rec
		}
		ok = true
		return nil
	})
	return b, ok, err
}

// SpoolDelete removes a delivered batch.
func (s *Store) SpoolDelete(output string, seq uint64) error {
	return s.update("removing a spooled batch", func(tx *bolt.Tx) error {
		ob, err := spoolBucket(tx, output, false)
		if err != nil || ob == nil {
			return err
		}
		batches := ob.Bucket(bucketBatches)
		key := binary.BigEndian.AppendUint64(nil, seq)
		v := batches.Get(key)
		if v == nil {
			return nil
		}
		if err := batches.Delete(key); err != nil {
			return err
		}
		total := int64(0)
		if t := ob.Get(keyBytes); len(t) == 8 {
			total = int64(binary.BigEndian.Uint64(t))
		}
		total = max(total-int64(len(v)), 0)
		return ob.Put(keyBytes, binary.BigEndian.AppendUint64(nil, uint64(total)))
	})
}

// Spools reports every output's backlog.
func (s *Store) Spools() ([]SpoolInfo, error) {
	var out []SpoolInfo
	err := s.view("reading the spool", func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSpool)
		if root == nil {
			return nil
		}
		return root.ForEachBucket(func(name []byte) error {
			ob := root.Bucket(name)
			info := SpoolInfo{Output: string(name)}
			if v := ob.Get(keyBytes); len(v) == 8 {
				info.Bytes = int64(binary.BigEndian.Uint64(v))
			}
			err := ob.Bucket(bucketBatches).ForEach(func(_, v []byte) error {
				count, n := binary.Uvarint(v)
				if n <= 0 {
					return fmt.Errorf("spool of output %s: %w", name, ErrCorrupt)
				}
				info.Batches++
				info.Records += int(count)
				return nil
			})
			if err != nil {
				return err
			}
			if info.Batches > 0 {
				out = append(out, info)
			}
			return nil
		})
	})
	return out, err
}

func spoolBucket(tx *bolt.Tx, output string, create bool) (*bolt.Bucket, error) {
	if output == "" {
		return nil, errors.New("spool: empty output name")
	}
	if !create {
		root := tx.Bucket(bucketSpool)
		if root == nil {
			return nil, nil
		}
		ob := root.Bucket([]byte(output))
		if ob == nil {
			return nil, nil
		}
		if ob.Bucket(bucketBatches) == nil {
			return nil, fmt.Errorf("spool of output %s: %w", output, ErrCorrupt)
		}
		return ob, nil
	}
	root, err := tx.CreateBucketIfNotExists(bucketSpool)
	if err != nil {
		return nil, err
	}
	ob, err := root.CreateBucketIfNotExists([]byte(output))
	if err != nil {
		return nil, err
	}
	if _, err := ob.CreateBucketIfNotExists(bucketBatches); err != nil {
		return nil, err
	}
	return ob, nil
}
