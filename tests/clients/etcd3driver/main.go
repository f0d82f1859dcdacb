// etcd3driver replays the etcd calls of k8s.io/apiserver's etcd3 store with the Go etcd client
// (clientv3 3.4, Debian's golang-etcd-server-dev) and prints one JSON object per line per result,
// for tests/clients/test_etcd_clients.py (run through tests/support/etcd3driver.py).
//
//	etcd3driver SCENARIO --endpoints URL[,URL] --prefix /registry-x
//	    [--resource flunders] [--other-resource fischers]
//	    [--cacert F --cert F --key F] [--user name:password] [--timeout 20s] [--dial-timeout 10s]
//	    [--count 7 --limit 3 (list)] [--ttl N (create, lease)] [--compacted (watch)]
//
// Keys follow the apiserver's layout (PREFIX is its --etcd-prefix): the resource prefix is
// PREFIX/RESOURCE, an object is PREFIX/RESOURCE/default/NAME; the list and watch scenarios also write
// an object of another, cluster-scoped resource, PREFIX/OTHER/NAME, which they must not see; the
// health key is PREFIX/health; the compactor's key is the literal compact_rev_key.
//
// Every line has a "step"; the last one is {"step":"done"}, or {"step":"error","at":STEP,...} with
// exit code 1 (2: bad arguments, 3: the scenario overran --timeout). The shapes of the other lines:
//
//	txn:      {step, succeeded, revision (header), responses: [op...]}, op one of
//	          {type:"put", revision, prev_kv}, {type:"range", revision, kvs, count, more},
//	          {type:"delete_range", revision, deleted, prev_kvs}
//	range:    {step, revision (header), kvs, count, more}
//	kv:       {key, value, create_revision, mod_revision, version, lease}
//	event:    {step:"event", response_revision, type:"PUT"|"DELETE", key, value, create_revision,
//	          mod_revision, version, lease, is_create, is_modify, has_prev_kv, prev_kv, prev_mod_revision}
//	response: {step, revision, events (count), canceled, created, compact_revision, is_progress_notify,
//	          err (WatchResponse.Err() text or null)}
//
// A header revision is -1 when the server sent no header (the apiserver would crash on it).
//
// Built in GOPATH mode: GO111MODULE=off GOPATH=$dir:/usr/share/gocode go build.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
	"go.etcd.io/etcd/mvcc/mvccpb"
	"go.etcd.io/etcd/pkg/transport"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

type M = map[string]interface{}

type options struct {
	scenario  string
	endpoints []string
	prefix    string
	resource  string
	other     string
	cacert    string
	cert      string
	key       string
	user      string
	timeout   time.Duration
	dial      time.Duration
	count     int
	limit     int64
	ttl       int64
	compacted bool
}

// resourcePrefix is the apiserver's resource prefix (no trailing "/"), e.g. /registry/wardle.example.com/flunders.
func (o *options) resourcePrefix() string { return o.prefix + "/" + o.resource }

// object is the key of a namespaced object of the resource.
func (o *options) object(name string) string { return o.resourcePrefix() + "/default/" + name }

// otherObject is the key of an object of the other resource (lists and watches must not see it).
func (o *options) otherObject(name string) string { return o.prefix + "/" + o.other + "/" + name }

var out = struct {
	sync.Mutex
	enc *json.Encoder
}{enc: json.NewEncoder(os.Stdout)}

// emit prints one result as a JSON line.
func emit(m M) {
	out.Lock()
	defer out.Unlock()
	if err := out.enc.Encode(m); err != nil {
		fmt.Fprintln(os.Stderr, "etcd3driver: cannot write:", err)
		os.Exit(1)
	}
}

func fail(scenario, step string, err error, code int) {
	emit(M{"step": "error", "scenario": scenario, "at": step, "error": err.Error()})
	os.Exit(code)
}

// stepError names the step that failed.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.err.Error() }

func at(step string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{step, err}
}

func main() {
	if len(os.Args) < 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: etcd3driver create|update|delete|list|watch|lease|compactor|health --endpoints URLS --prefix P [flags]")
		os.Exit(2)
	}
	o := options{scenario: os.Args[1]}
	fs := flag.NewFlagSet(o.scenario, flag.ContinueOnError)
	endpoints := fs.String("endpoints", "", "comma-separated client URLs")
	fs.StringVar(&o.prefix, "prefix", "", "the apiserver's --etcd-prefix, without a trailing /")
	fs.StringVar(&o.resource, "resource", "flunders", "resource name: keys are PREFIX/RESOURCE/default/NAME")
	fs.StringVar(&o.other, "other-resource", "fischers", "a cluster-scoped resource beside it: PREFIX/OTHER/NAME")
	fs.StringVar(&o.cacert, "cacert", "", "CA bundle verifying the server")
	fs.StringVar(&o.cert, "cert", "", "client certificate")
	fs.StringVar(&o.key, "key", "", "client key")
	fs.StringVar(&o.user, "user", "", "etcd user as name:password")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Second, "bound on the whole scenario")
	fs.DurationVar(&o.dial, "dial-timeout", 10*time.Second, "bound on connecting (the apiserver's is 20s)")
	fs.IntVar(&o.count, "count", 7, "list: objects to create")
	fs.Int64Var(&o.limit, "limit", 3, "list: page size")
	fs.Int64Var(&o.ttl, "ttl", 0, "create: attach a lease of this TTL; lease: TTL to grant (default 60)")
	fs.BoolVar(&o.compacted, "compacted", false, "watch: then compact and watch from before the compaction")
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	o.endpoints = strings.Split(*endpoints, ",")
	scenario, ok := scenarios[o.scenario]
	if !ok || *endpoints == "" || o.prefix == "" || strings.HasSuffix(o.prefix, "/") {
		fmt.Fprintf(os.Stderr, "etcd3driver: unknown scenario %q, or --endpoints/--prefix missing (prefix without trailing /)\n", o.scenario)
		os.Exit(2)
	}

	// A hard stop in case a call ignores its context.
	time.AfterFunc(o.timeout+5*time.Second, func() {
		fail(o.scenario, "timeout", fmt.Errorf("scenario did not finish within %v", o.timeout), 3)
	})
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	client, err := connect(ctx, &o)
	if err != nil {
		fail(o.scenario, "connect", err, 1)
	}
	err = scenario(ctx, client, &o)
	client.Close()
	if err != nil {
		step := "scenario"
		var se *stepError
		if errors.As(err, &se) {
			step = se.step
		}
		fail(o.scenario, step, err, 1)
	}
	emit(M{"step": "done"})
}

var scenarios = map[string]func(context.Context, *clientv3.Client, *options) error{
	"create":    scenarioCreate,
	"update":    scenarioUpdate,
	"delete":    scenarioDelete,
	"list":      scenarioList,
	"watch":     scenarioWatch,
	"lease":     scenarioLease,
	"compactor": scenarioCompactor,
	"health":    scenarioHealth,
}

// connect builds the client as the apiserver's newETCD3Client does (blocking dial, keepalive),
// with TLS and etcd user credentials when given.
func connect(ctx context.Context, o *options) (*clientv3.Client, error) {
	quiet := zap.NewProductionConfig()
	quiet.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	quiet.OutputPaths = []string{"stderr"}
	cfg := clientv3.Config{
		Endpoints:            o.endpoints,
		DialTimeout:          o.dial,
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
		DialOptions:          []grpc.DialOption{grpc.WithBlock()},
		LogConfig:            &quiet,
		Context:              ctx,
	}
	if o.cacert != "" || o.cert != "" || o.key != "" {
		tlsInfo := transport.TLSInfo{CertFile: o.cert, KeyFile: o.key, TrustedCAFile: o.cacert}
		tlsConfig, err := tlsInfo.ClientConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tlsConfig
	}
	if o.user != "" {
		name, password, ok := strings.Cut(o.user, ":")
		if !ok {
			return nil, errors.New("--user must be name:password")
		}
		cfg.Username, cfg.Password = name, password
	}
	return clientv3.New(cfg)
}

// -- the apiserver's requests (pkg/storage/etcd3/store.go) -------------------------------------------

// create is store.Create: put only if the key does not exist; no failure ops.
func create(ctx context.Context, c *clientv3.Client, key, value string, lease clientv3.LeaseID) (*clientv3.TxnResponse, error) {
	return c.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "=", 0),
	).Then(
		clientv3.OpPut(key, value, clientv3.WithLease(lease)),
	).Commit()
}

// update is GuaranteedUpdate's optimistic put: on a conflict, read the current object back.
func update(ctx context.Context, c *clientv3.Client, key string, rev int64, value string) (*clientv3.TxnResponse, error) {
	return c.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "=", rev),
	).Then(
		clientv3.OpPut(key, value),
	).Else(
		clientv3.OpGet(key),
	).Commit()
}

// remove is conditionalDelete: delete at a revision, else read the current object back.
func remove(ctx context.Context, c *clientv3.Client, key string, rev int64) (*clientv3.TxnResponse, error) {
	return c.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "=", rev),
	).Then(
		clientv3.OpDelete(key),
	).Else(
		clientv3.OpGet(key),
	).Commit()
}

// get is store.Get (the 3.5 kubernetes client's Get: limit 1).
func get(ctx context.Context, c *clientv3.Client, key string) (*clientv3.GetResponse, error) {
	return c.Get(ctx, key, clientv3.WithLimit(1))
}

// succeeded prints a txn that has to succeed and returns its revision:
// rev, err := succeeded("create")(create(...)).
func succeeded(step string) func(*clientv3.TxnResponse, error) (int64, error) {
	return func(resp *clientv3.TxnResponse, err error) (int64, error) {
		if err != nil {
			return 0, at(step, err)
		}
		emit(txnJSON(step, resp))
		if !resp.Succeeded {
			return 0, at(step, errors.New("txn did not succeed"))
		}
		return revision(resp.Header), nil
	}
}

// -- JSON forms -----------------------------------------------------------------------------------

// revision is a header's revision, or -1 when the server sent no header (which would crash the
// apiserver: the tests assert it is there).
func revision(h *pb.ResponseHeader) int64 {
	if h == nil {
		return -1
	}
	return h.Revision
}

func kvJSON(kv *mvccpb.KeyValue) M {
	if kv == nil {
		return nil
	}
	return M{
		"key": string(kv.Key), "value": string(kv.Value), "create_revision": kv.CreateRevision,
		"mod_revision": kv.ModRevision, "version": kv.Version, "lease": kv.Lease,
	}
}

func kvsJSON(kvs []*mvccpb.KeyValue) []M {
	list := []M{}
	for _, kv := range kvs {
		list = append(list, kvJSON(kv))
	}
	return list
}

func rangeJSON(step string, resp *clientv3.GetResponse) M {
	return M{"step": step, "revision": revision(resp.Header), "kvs": kvsJSON(resp.Kvs), "count": resp.Count, "more": resp.More}
}

// txnJSON: succeeded, the header revision and one entry per ResponseOp, in order.
func txnJSON(step string, resp *clientv3.TxnResponse) M {
	ops := []M{}
	for _, r := range resp.Responses {
		switch op := r.Response.(type) {
		case *pb.ResponseOp_ResponsePut:
			ops = append(ops, M{"type": "put", "revision": revision(op.ResponsePut.Header), "prev_kv": kvJSON(op.ResponsePut.PrevKv)})
		case *pb.ResponseOp_ResponseRange:
			rr := op.ResponseRange
			ops = append(ops, M{"type": "range", "revision": revision(rr.Header), "kvs": kvsJSON(rr.Kvs), "count": rr.Count, "more": rr.More})
		case *pb.ResponseOp_ResponseDeleteRange:
			dr := op.ResponseDeleteRange
			ops = append(ops, M{"type": "delete_range", "revision": revision(dr.Header), "deleted": dr.Deleted, "prev_kvs": kvsJSON(dr.PrevKvs)})
		case *pb.ResponseOp_ResponseTxn:
			ops = append(ops, M{"type": "txn", "revision": revision(op.ResponseTxn.Header)})
		default:
			ops = append(ops, M{"type": "unknown"})
		}
	}
	return M{"step": step, "succeeded": resp.Succeeded, "revision": revision(resp.Header), "responses": ops}
}

func eventJSON(resp *clientv3.WatchResponse, ev *clientv3.Event) M {
	m := M{
		"step": "event", "response_revision": revision(&resp.Header), "type": ev.Type.String(),
		"key": string(ev.Kv.Key), "value": string(ev.Kv.Value), "create_revision": ev.Kv.CreateRevision,
		"mod_revision": ev.Kv.ModRevision, "version": ev.Kv.Version, "lease": ev.Kv.Lease,
		"is_create": ev.IsCreate(), "is_modify": ev.IsModify(), "has_prev_kv": ev.PrevKv != nil,
		"prev_kv": kvJSON(ev.PrevKv), "prev_mod_revision": nil,
	}
	if ev.PrevKv != nil {
		m["prev_mod_revision"] = ev.PrevKv.ModRevision
	}
	return m
}

func watchResponseJSON(step string, resp *clientv3.WatchResponse) M {
	m := M{
		"step": step, "revision": resp.Header.Revision, "events": len(resp.Events), "canceled": resp.Canceled,
		"created": resp.Created, "compact_revision": resp.CompactRevision,
		"is_progress_notify": resp.IsProgressNotify(), "err": nil,
	}
	if err := resp.Err(); err != nil {
		m["err"] = err.Error()
	}
	return m
}

// -- scenarios ------------------------------------------------------------------------------------

// scenarioCreate: store.Create twice on one key (the second must fail with no responses), then
// the object read back; with --ttl the object carries a fresh lease, as TTL'd resources do.
// Steps: [grant {id, ttl, revision}], create (txn), create-again (txn), get (range).
func scenarioCreate(ctx context.Context, c *clientv3.Client, o *options) error {
	key := o.object("created")
	var lease clientv3.LeaseID
	if o.ttl > 0 {
		grant, err := c.Grant(ctx, o.ttl)
		if err != nil {
			return at("grant", err)
		}
		lease = grant.ID
		emit(M{"step": "grant", "id": int64(grant.ID), "ttl": grant.TTL, "revision": revision(grant.ResponseHeader)})
	}
	first, err := create(ctx, c, key, `{"name":"created","generation":1}`, lease)
	if err != nil {
		return at("create", err)
	}
	emit(txnJSON("create", first))
	second, err := create(ctx, c, key, `{"name":"created","generation":2}`, lease)
	if err != nil {
		return at("create-again", err)
	}
	emit(txnJSON("create-again", second))
	got, err := get(ctx, c, key)
	if err != nil {
		return at("get", err)
	}
	emit(rangeJSON("get", got))
	return nil
}

// scenarioUpdate: GuaranteedUpdate's optimistic put with the right revision, with a stale one
// (fails and returns the current object), retried with the revision it returned; and an update
// of an object that does not exist (fails with an empty range).
// Steps: create, update, update-stale, update-retry (txns), get (range), update-missing (txn).
func scenarioUpdate(ctx context.Context, c *clientv3.Client, o *options) error {
	key := o.object("updated")
	created, err := succeeded("create")(create(ctx, c, key, "v1", 0))
	if err != nil {
		return err
	}
	if _, err = succeeded("update")(update(ctx, c, key, created, "v2")); err != nil {
		return err
	}
	stale, err := update(ctx, c, key, created, "v3-stale")
	if err != nil {
		return at("update-stale", err)
	}
	emit(txnJSON("update-stale", stale))
	if stale.Succeeded || len(stale.Responses) == 0 || len(stale.Responses[0].GetResponseRange().GetKvs()) != 1 {
		return at("update-stale", errors.New("a stale update must fail and return the current object"))
	}
	current := stale.Responses[0].GetResponseRange().Kvs[0]
	if _, err = succeeded("update-retry")(update(ctx, c, key, current.ModRevision, "v3")); err != nil {
		return err
	}
	got, err := get(ctx, c, key)
	if err != nil {
		return at("get", err)
	}
	emit(rangeJSON("get", got))
	missing, err := update(ctx, c, o.object("never-created"), created, "v1")
	if err != nil {
		return at("update-missing", err)
	}
	emit(txnJSON("update-missing", missing))
	return nil
}

// scenarioDelete: conditionalDelete with a stale revision (fails, Responses[0] is a range with the
// current object), with the right one, and again on the deleted key.
// Steps: create, update, delete-stale, delete (txns), get (range), delete-again (txn).
func scenarioDelete(ctx context.Context, c *clientv3.Client, o *options) error {
	key := o.object("deleted")
	created, err := succeeded("create")(create(ctx, c, key, "v1", 0))
	if err != nil {
		return err
	}
	updated, err := succeeded("update")(update(ctx, c, key, created, "v2"))
	if err != nil {
		return err
	}
	stale, err := remove(ctx, c, key, created)
	if err != nil {
		return at("delete-stale", err)
	}
	emit(txnJSON("delete-stale", stale))
	deleted, err := remove(ctx, c, key, updated)
	if err != nil {
		return at("delete", err)
	}
	emit(txnJSON("delete", deleted))
	got, err := get(ctx, c, key)
	if err != nil {
		return at("get", err)
	}
	emit(rangeJSON("get", got))
	again, err := remove(ctx, c, key, updated)
	if err != nil {
		return at("delete-again", err)
	}
	emit(txnJSON("delete-again", again))
	return nil
}

// scenarioList: --count objects (and one of another resource), then GetList's paging: the first
// page at the current revision, later pages from lastKey+"\x00" at the first page's revision while
// an object is created and another deleted in between; then the count-only, keys-only and
// GetCurrentResourceVersion reads.
// Steps: setup ×count, setup-other (txns), page (range + page number and start key), changed-create,
// changed-delete (txns), page ×n, count-only, keys-only, current-revision (ranges).
func scenarioList(ctx context.Context, c *clientv3.Client, o *options) error {
	for i := 0; i < o.count; i++ {
		if _, err := succeeded("setup")(create(ctx, c, o.object(fmt.Sprintf("item-%02d", i)), fmt.Sprintf("v%d", i), 0)); err != nil {
			return err
		}
	}
	if _, err := succeeded("setup-other")(create(ctx, c, o.otherObject("x"), "x", 0)); err != nil {
		return err
	}
	start := o.resourcePrefix() + "/"
	end := clientv3.GetPrefixRangeEnd(start)
	first, err := c.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(o.limit))
	if err != nil {
		return at("page", err)
	}
	page := rangeJSON("page", first)
	page["page"], page["start"] = 0, start
	emit(page)
	withRev := first.Header.Revision

	// Changes between pages must not show in later pages.
	if _, err = succeeded("changed-create")(create(ctx, c, o.object("zz-late"), "late", 0)); err != nil {
		return err
	}
	last, err := get(ctx, c, o.object(fmt.Sprintf("item-%02d", o.count-1)))
	if err != nil || len(last.Kvs) != 1 {
		return at("changed-delete", fmt.Errorf("reading the last item: %v", err))
	}
	if _, err = succeeded("changed-delete")(remove(ctx, c, o.object(fmt.Sprintf("item-%02d", o.count-1)), last.Kvs[0].ModRevision)); err != nil {
		return err
	}

	resp := first
	for n := 1; int64(len(resp.Kvs)) < resp.Count; n++ { // the apiserver's hasMore
		if len(resp.Kvs) == 0 || n > 1000 {
			return at("page", errors.New("no progress while paging (len(kvs)==0 with count > 0)"))
		}
		key := string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		resp, err = c.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(o.limit), clientv3.WithRev(withRev))
		if err != nil {
			return at("page", err)
		}
		page = rangeJSON("page", resp)
		page["page"], page["start"] = n, key
		emit(page)
	}

	counted, err := c.Get(ctx, start, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return at("count-only", err)
	}
	emit(rangeJSON("count-only", counted))
	keys, err := c.Get(ctx, start, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return at("keys-only", err)
	}
	emit(rangeJSON("keys-only", keys))
	current, err := c.Get(ctx, o.resourcePrefix(), clientv3.WithLimit(1))
	if err != nil {
		return at("current-revision", err)
	}
	emit(rangeJSON("current-revision", current))
	return nil
}

// next waits for the next watch response (ok false: the channel closed).
func next(ctx context.Context, ch clientv3.WatchChan) (clientv3.WatchResponse, bool, error) {
	select {
	case resp, ok := <-ch:
		return resp, ok, nil
	case <-ctx.Done():
		return clientv3.WatchResponse{}, false, ctx.Err()
	}
}

// scenarioWatch: the cacher's watch (require leader, prefix, from list revision+1, prev_kv,
// progress notify) sees a create, an update and a delete (and not a write to another resource),
// then a requested progress notification; with --compacted, a compaction and a watch from before it.
// Steps: setup (txn), list (range), watching {key, start_revision}, write-create, write-update,
// write-other, write-delete (txns), then per watch response a response line followed by its event
// lines, then progress (response) lines up to the progress notification; with --compacted: compact
// {revision, header_revision}, watch-compacted (response + start_revision), watch-compacted-closed.
func scenarioWatch(ctx context.Context, c *clientv3.Client, o *options) error {
	a, b := o.object("a"), o.object("b")
	if _, err := succeeded("setup")(create(ctx, c, a, "a1", 0)); err != nil {
		return err
	}
	start := o.resourcePrefix() + "/"
	listed, err := c.Get(ctx, start, clientv3.WithRange(clientv3.GetPrefixRangeEnd(start)))
	if err != nil {
		return at("list", err)
	}
	emit(rangeJSON("list", listed))
	from := listed.Header.Revision + 1

	watchCtx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer stop()
	ch := c.Watch(watchCtx, start, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	emit(M{"step": "watching", "key": start, "start_revision": from})

	created, err := succeeded("write-create")(create(ctx, c, b, "b1", 0))
	if err != nil {
		return err
	}
	updated, err := succeeded("write-update")(update(ctx, c, b, created, "b2"))
	if err != nil {
		return err
	}
	if _, err = succeeded("write-other")(create(ctx, c, o.otherObject("b"), "x", 0)); err != nil {
		return err
	}
	if _, err = succeeded("write-delete")(remove(ctx, c, b, updated)); err != nil {
		return err
	}

	for seen := 0; seen < 3; {
		resp, ok, err := next(ctx, ch)
		if err != nil || !ok {
			return at("event", fmt.Errorf("watch ended after %d events: %v", seen, err))
		}
		if resp.Err() != nil {
			return at("event", resp.Err())
		}
		emit(watchResponseJSON("response", &resp))
		for _, ev := range resp.Events {
			emit(eventJSON(&resp, ev))
			seen++
		}
	}

	// RequestProgress goes to the stream with the same metadata (hasleader) as the watch.
	if err = c.RequestProgress(clientv3.WithRequireLeader(ctx)); err != nil {
		return at("progress", err)
	}
	for {
		resp, ok, err := next(ctx, ch)
		if err != nil || !ok {
			return at("progress", fmt.Errorf("no progress notification: %v", err))
		}
		emit(watchResponseJSON("progress", &resp))
		if resp.IsProgressNotify() {
			break
		}
	}
	stop()
	if o.compacted {
		return watchCompacted(ctx, c, start, from)
	}
	return nil
}

// watchCompacted compacts at the current revision, then watches from `from` (now compacted).
func watchCompacted(ctx context.Context, c *clientv3.Client, key string, from int64) error {
	now, err := c.Get(ctx, key, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return at("compact", err)
	}
	compacted, err := c.Compact(ctx, now.Header.Revision)
	if err != nil {
		return at("compact", err)
	}
	emit(M{"step": "compact", "revision": now.Header.Revision, "header_revision": revision(compacted.Header)})

	watchCtx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer stop()
	ch := c.Watch(watchCtx, key, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	resp, ok, err := next(ctx, ch)
	if err != nil || !ok {
		return at("watch-compacted", fmt.Errorf("no answer to a watch from a compacted revision: %v", err))
	}
	answer := watchResponseJSON("watch-compacted", &resp)
	answer["start_revision"] = from
	emit(answer)
	closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		more, ok, err := next(closeCtx, ch)
		if err != nil {
			return at("watch-compacted-closed", errors.New("the watch channel did not close after the compacted answer"))
		}
		if !ok {
			emit(M{"step": "watch-compacted-closed", "closed": true})
			return nil
		}
		emit(watchResponseJSON("watch-compacted-more", &more))
	}
}

// scenarioLease: Grant, a create txn with the lease, TimeToLive with keys, KeepAliveOnce, Leases,
// Revoke, and the key gone.
// Steps: grant {id, ttl, revision}, put (txn), get (range), timetolive {id, ttl, granted_ttl, keys,
// revision}, keepalive {id, ttl, revision}, leases {ids, revision}, revoke {revision},
// get-after-revoke (range), timetolive-after-revoke, leases-after-revoke.
func scenarioLease(ctx context.Context, c *clientv3.Client, o *options) error {
	ttl := o.ttl
	if ttl == 0 {
		ttl = 60
	}
	grant, err := c.Grant(ctx, ttl)
	if err != nil {
		return at("grant", err)
	}
	emit(M{"step": "grant", "id": int64(grant.ID), "ttl": grant.TTL, "revision": revision(grant.ResponseHeader)})
	key := o.object("leased")
	if _, err = succeeded("put")(create(ctx, c, key, "leased", grant.ID)); err != nil {
		return err
	}
	got, err := get(ctx, c, key)
	if err != nil {
		return at("get", err)
	}
	emit(rangeJSON("get", got))
	live, err := c.TimeToLive(ctx, grant.ID, clientv3.WithAttachedKeys())
	if err != nil {
		return at("timetolive", err)
	}
	emit(leaseTTLJSON("timetolive", live))
	kept, err := c.KeepAliveOnce(ctx, grant.ID)
	if err != nil {
		return at("keepalive", err)
	}
	emit(M{"step": "keepalive", "id": int64(kept.ID), "ttl": kept.TTL, "revision": revision(kept.ResponseHeader)})
	if err = emitLeases(ctx, c, "leases"); err != nil {
		return err
	}
	revoked, err := c.Revoke(ctx, grant.ID)
	if err != nil {
		return at("revoke", err)
	}
	emit(M{"step": "revoke", "revision": revision(revoked.Header)})
	if got, err = get(ctx, c, key); err != nil {
		return at("get-after-revoke", err)
	}
	emit(rangeJSON("get-after-revoke", got))
	if live, err = c.TimeToLive(ctx, grant.ID); err != nil {
		return at("timetolive-after-revoke", err)
	}
	emit(leaseTTLJSON("timetolive-after-revoke", live))
	return emitLeases(ctx, c, "leases-after-revoke")
}

func leaseTTLJSON(step string, r *clientv3.LeaseTimeToLiveResponse) M {
	keys := []string{}
	for _, k := range r.Keys {
		keys = append(keys, string(k))
	}
	return M{"step": step, "id": r.ID, "ttl": r.TTL, "granted_ttl": r.GrantedTTL, "keys": keys, "revision": revision(r.ResponseHeader)}
}

func emitLeases(ctx context.Context, c *clientv3.Client, step string) error {
	leases, err := c.Leases(ctx)
	if err != nil {
		return at(step, err)
	}
	ids := []int64{}
	for _, l := range leases.Leases {
		ids = append(ids, int64(l.ID))
	}
	emit(M{"step": step, "ids": ids, "revision": revision(leases.ResponseHeader)})
	return nil
}

const compactRevKey = "compact_rev_key"

// compact is one round of the apiserver's compactor (storage/etcd3/compact.go, 1.30-1.33): t is
// the logical clock (compact_rev_key's version) and rev the revision to compact.
func compact(ctx context.Context, c *clientv3.Client, round int, t, rev int64) (int64, int64, error) {
	step := fmt.Sprintf("compactor-%d", round)
	resp, err := c.Txn(ctx).If(
		clientv3.Compare(clientv3.Version(compactRevKey), "=", t),
	).Then(
		clientv3.OpPut(compactRevKey, fmt.Sprint(rev)),
	).Else(
		clientv3.OpGet(compactRevKey),
	).Commit()
	if err != nil {
		return t, rev, at(step, err)
	}
	result := txnJSON("compactor", resp)
	result["round"], result["t"], result["rev"] = round, t, rev
	curRev := revision(resp.Header)
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			emit(result)
			return t, rev, at(step, errors.New("failed compactor txn without compact_rev_key (the apiserver panics)"))
		}
		result["version"], result["compacted"] = kvs[0].Version, 0
		emit(result)
		return kvs[0].Version, curRev, nil
	}
	result["version"], result["compacted"] = t+1, 0
	if rev != 0 {
		if _, err = c.Compact(ctx, rev); err != nil {
			result["compact_error"] = err.Error()
		} else {
			result["compacted"] = rev
		}
	}
	emit(result)
	return t + 1, curRev, nil
}

// scenarioCompactor: two rounds of one apiserver's compactor (the first only records a revision,
// the second compacts it), then a round of a second apiserver that starts from t=0 and learns the
// clock from the failed txn, then its next round, which succeeds.
// Steps: compactor (txn + round, t sent, rev sent, version = t afterwards, compacted = the revision
// compacted or 0, [compact_error]) ×4, with a write (txn) after each of the first two rounds.
func scenarioCompactor(ctx context.Context, c *clientv3.Client, o *options) error {
	t, rev := int64(0), int64(0)
	var err error
	for round := 1; round <= 2; round++ {
		if t, rev, err = compact(ctx, c, round, t, rev); err != nil {
			return err
		}
		// A write between rounds, as a live cluster has.
		if _, err = succeeded("write")(create(ctx, c, o.object(fmt.Sprintf("between-%d", round)), "x", 0)); err != nil {
			return err
		}
	}
	other, otherRev, err := compact(ctx, c, 3, 0, 0)
	if err != nil {
		return err
	}
	_, _, err = compact(ctx, c, 4, other, otherRev)
	return err
}

// scenarioHealth: the apiserver's health probe (a plain Get of PREFIX/health) and, per endpoint,
// Maintenance.Status (DB size monitor, feature support checker).
// Steps: health (range), status {endpoint, version, db_size, leader, raft_index, raft_term, revision,
// member_id, cluster_id} per endpoint.
func scenarioHealth(ctx context.Context, c *clientv3.Client, o *options) error {
	health, err := c.Get(ctx, o.prefix+"/health")
	if err != nil {
		return at("health", err)
	}
	emit(rangeJSON("health", health))
	for _, ep := range o.endpoints {
		status, err := c.Status(ctx, ep)
		if err != nil {
			return at("status", err)
		}
		m := M{
			"step": "status", "endpoint": ep, "version": status.Version, "db_size": status.DbSize,
			"leader": status.Leader, "raft_index": status.RaftIndex, "raft_term": status.RaftTerm,
			"revision": revision(status.Header), "member_id": nil, "cluster_id": nil,
		}
		if status.Header != nil {
			m["member_id"], m["cluster_id"] = status.Header.MemberId, status.Header.ClusterId
		}
		emit(m)
	}
	return nil
}
