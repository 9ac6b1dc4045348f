"""The daemon's drain rate against its render rate (scripts/bench-e2e).

A burst of photos is pushed through `ec2-service serve` (signed POST /v1/jobs) with the
sources and variants on s3s-fs (a fast, real S3 server on loopback) and the records on
dynalite (or moto, with --moto only), each behind a proxy that adds the latency a region
has (GET 20 ms and PUT 40 ms to first byte on S3, 5 ms on DynamoDB). The same files go
through `ec2-service process` (the same core, no network). Rounds of process then serve
(3 by default) alternate, so drift in the machine's speed hits both alike; the last line,
`drain/process: R`, is the median of the rounds' ratios.

In a region S3 and DynamoDB do not run on the instance's cores. Here they would, so by
default the machine's cores are split: the servers, the proxies and this script get a
quarter of them (at least one), and `process` and the daemon get the same other cores
(sched_setaffinity; both size their pools from the cores they are given). With
--shared-cores everything runs on every core, as one box with its servers would. The CPU
each side used is printed either way.

    python3 bench_e2e.py --binary target/release/ec2-service --s3s PATH \
        (--dynalite CLI.JS | --moto PATH) [--photos 1000] [--size 1600x1200] [--work DIR] \
        [--concurrency N ...] [--rounds 3] [--shared-cores]
"""

import argparse
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
KEY_ID = "bench"
SECRET = "bench-secret-0123456789abcdef0123456789"
SOURCE, OUTPUT, TABLE = "bench-source", "bench-output", "bench-records"
JOBS_PER_CORE = 8  # the daemon's default: [server] concurrency = 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_photos(directory, count, width, height):
    """Camera-like JPEGs (gradients, texture, noise: they compress like photos)."""
    from PIL import Image, ImageFilter

    os.makedirs(directory, exist_ok=True)
    existing = sorted(f for f in os.listdir(directory) if f.endswith(".jpg"))
    if len(existing) >= count:
        return [os.path.join(directory, f) for f in existing[:count]]
    rng = random.Random(7)
    base = Image.effect_noise((width, height), 60).convert("RGB")
    for i in range(len(existing), count):
        tint = tuple(rng.randrange(40, 220) for _ in range(3))
        gradient = Image.linear_gradient("L").resize((width, height)).rotate(rng.randrange(360), expand=False)
        image = Image.merge("RGB", [gradient.point(lambda v, t=t: (v * t) // 255) for t in tint])
        image = Image.blend(image, base, 0.25).filter(ImageFilter.GaussianBlur(rng.random() * 1.5))
        image.save(os.path.join(directory, f"p{i:04d}.jpg"), quality=88)
    return [os.path.join(directory, f"p{i:04d}.jpg") for i in range(count)]


def peak_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid):
    """User and system CPU time of one process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def split_cores(shared):
    """(ours, the servers'): CPU sets for process and the daemon, and for the servers."""
    cpus = sorted(os.sched_getaffinity(0))
    if shared or len(cpus) < 2:
        return set(cpus), set(cpus)
    servers = max(1, len(cpus) // 4)
    return set(cpus[:-servers]), set(cpus[-servers:])


def on(cpus):
    """A preexec_fn that runs the child on these CPUs."""
    return lambda: os.sched_setaffinity(0, cpus)


def median_run(runs):
    """The run with the median wall time (of an even count, the faster middle one)."""
    return sorted(runs, key=lambda run: run[0])[(len(runs) - 1) // 2]


def run_process(binary, files, work, cpus):
    import resource

    out = os.path.join(work, "process-out")
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run([binary, "process", "--out", out, *files], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=on(cpus))
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


class Services:
    """s3s-fs, dynalite or moto, the two latency proxies: started once, reused by every run."""

    def __init__(self, s3s, dynamodb, work, env, cpus):
        self.procs = []
        self.env = env
        self.cpus = cpus
        root = os.path.join(work, "s3s-root")
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        self.s3_port = free_port()
        self.spawn([s3s, "--host", "127.0.0.1", "--port", str(self.s3_port),
                    "--access-key", "testing", "--secret-key", "testing", root])
        self.wait_port(self.s3_port)
        self.ddb_port = free_port()
        kind, path = dynamodb
        if kind == "dynalite":
            self.spawn(["node", path, "--host", "127.0.0.1", "--port", str(self.ddb_port),
                        "--createTableMs", "0", "--deleteTableMs", "0"])
        else:
            self.spawn([path, "-H", "127.0.0.1", "-p", str(self.ddb_port)])
        self.wait_port(self.ddb_port)
        self.s3_proxy = self.proxy(self.s3_port, 20, 40, 10)
        self.ddb_proxy = self.proxy(self.ddb_port, 5, 5, 5)

    def spawn(self, argv, **kwargs):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=self.env, start_new_session=True, preexec_fn=on(self.cpus), **kwargs)
        self.procs.append(proc)
        return proc

    def proxy(self, target, get_ms, put_ms, other_ms):
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "latency_proxy.py"), "0",
                                 f"127.0.0.1:{target}", str(get_ms), str(put_ms), str(other_ms)],
                                stdout=subprocess.PIPE, text=True, start_new_session=True,
                                preexec_fn=on(self.cpus))
        self.procs.append(proc)
        return int(proc.stdout.readline().split()[1])

    @staticmethod
    def wait_port(port, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"nothing listens on {port}")

    def cpu(self):
        """CPU seconds the servers and proxies have used so far."""
        return sum(self.cpu_each().values())

    def cpu_each(self):
        """CPU seconds so far per server: S3, DynamoDB, and the two proxies."""
        names = ["S3", "DynamoDB", "S3 proxy", "DynamoDB proxy"]
        return {name: cpu_seconds(proc.pid) for name, proc in zip(names, self.procs)}

    def stop(self):
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def clients(services):
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{services.s3_port}", region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing",
                      config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))
    ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{services.ddb_port}", region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return s3, ddb


def prepare(s3, ddb, files):
    for bucket in (SOURCE, OUTPUT):
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    from concurrent.futures import ThreadPoolExecutor

    def put(path):
        with open(path, "rb") as f:
            s3.put_object(Bucket=SOURCE, Key=f"uploads/{os.path.basename(path)}", Body=f.read())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, files))


def fresh_table(ddb):
    """Drops and recreates the records table. Deletion is asynchronous in dynalite as in
    DynamoDB: the create waits until the old table is gone."""
    try:
        ddb.delete_table(TableName=TABLE)
    except ddb.exceptions.ResourceNotFoundException:
        pass
    ddb.get_waiter("table_not_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "FileName", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "FileName", "AttributeType": "S"}])
    ddb.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})


def sign(body, now):
    digest = hashlib.sha256(body).hexdigest()
    text = f"POST\n/v1/jobs\n{now}\n{digest}".encode()
    return hmac.new(SECRET.encode(), text, hashlib.sha256).hexdigest()


def post_jobs(port, keys):
    body = json.dumps({"jobs": [{"action": "process", "bucket": SOURCE, "key": k,
                                 "eventName": "ObjectCreated:Put"} for k in keys]}).encode()
    now = int(time.time())
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/jobs", data=body, method="POST", headers={
        "Content-Type": "application/json", "x-pipeline-key-id": KEY_ID,
        "x-pipeline-timestamp": str(now), "x-pipeline-signature": sign(body, now)})
    with urllib.request.urlopen(request, timeout=30) as answer:
        if answer.status != 202:
            raise SystemExit(f"POST /v1/jobs answered {answer.status}")


def metric(port, series):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(series + " ") or line.startswith(series + "{"):
                name, value = line.rsplit(" ", 1)
                if name == series:
                    return float(value)
    return 0.0


def drain(binary, services, files, work, concurrency, cpus):
    s3, ddb = clients(services)
    fresh_table(ddb)
    scratch = os.path.join(work, f"scratch-{concurrency}")
    shutil.rmtree(scratch, ignore_errors=True)
    port, admin = free_port(), free_port()
    config = os.path.join(work, f"config-{concurrency}.toml")
    with open(config, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
concurrency = {concurrency}
queue_capacity = {len(files) + 10}
[admin]
listen = "127.0.0.1:{admin}"
[scratch]
dir = "{scratch}"
min_free_bytes = 1048576
[aws]
region = "us-east-1"
endpoint_url = "http://127.0.0.1:{services.ddb_proxy}"
s3_endpoint_url = "http://127.0.0.1:{services.s3_proxy}"
force_path_style = true
source_bucket = "{SOURCE}"
output_bucket = "{OUTPUT}"
table = "{TABLE}"
[log]
level = "warn"
""")
    env = dict(services.env, EC2_SERVICE__SIGNING__KEYS=f"{KEY_ID}:{SECRET}")
    daemon = subprocess.Popen([binary, "serve", "--config", config], env=env, preexec_fn=on(cpus),
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"daemon-{concurrency}.log"), "w"))
    try:
        Services.wait_port(port)
        keys = [f"uploads/{os.path.basename(p)}" for p in files]
        servers_before = services.cpu_each()
        daemon_before = cpu_seconds(daemon.pid)
        started = time.monotonic()
        for i in range(0, len(keys), 10):
            post_jobs(port, keys[i:i + 10])
        series = 'ec2_service_jobs_finished_total{status="DONE",code=""}'
        while True:
            done = metric(port, series)
            failed = sum(float(l.rsplit(" ", 1)[1]) for l in urllib.request.urlopen(
                f"http://127.0.0.1:{port}/metrics").read().decode().splitlines()
                if l.startswith('ec2_service_jobs_finished_total{status="FAILED"'))
            if done + failed >= len(keys):
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        daemon_cpu = cpu_seconds(daemon.pid) - daemon_before
        servers_after = services.cpu_each()
        each = {name: servers_after[name] - servers_before[name] for name in servers_after}
        servers_cpu = sum(each.values())
        return elapsed, int(done), int(failed), peak_rss_mib(daemon.pid), daemon_cpu, servers_cpu, each
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--s3s", required=True)
    parser.add_argument("--dynalite", help="dynalite's cli.js (the default DynamoDB)")
    parser.add_argument("--moto", help="moto_server, for DynamoDB when --dynalite is not given")
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--size", default="1600x1200")
    parser.add_argument("--work", default=None)
    parser.add_argument("--concurrency", type=int, nargs="*", default=None,
                        help="[server] concurrency of each serve run (default: 0, the daemon's "
                             "default; add 1 for one job per core)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of process then serve; the table shows the medians")
    parser.add_argument("--shared-cores", action="store_true",
                        help="run the servers on the daemon's cores instead of their own")
    args = parser.parse_args()
    if not (args.dynalite or args.moto):
        parser.error("give --dynalite or --moto")
    dynamodb = ("dynalite", args.dynalite) if args.dynalite else ("moto", args.moto)
    width, height = (int(v) for v in args.size.split("x"))
    work = args.work or tempfile.mkdtemp(prefix="bench-e2e-")
    os.makedirs(work, exist_ok=True)
    cache = os.path.join(os.path.dirname(HERE), "..", ".cache", "bench-e2e", f"{args.size}")
    files = make_photos(cache, args.photos, width, height)
    mp = width * height * len(files) / 1e6
    ours_cpus, servers_cpus = split_cores(args.shared_cores)
    cores = len(ours_cpus)
    if args.concurrency is None:
        args.concurrency = [0]
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_EC2_METADATA_DISABLED="true")
    env.pop("AWS_PROFILE", None)

    shared = ours_cpus == servers_cpus
    where = (f"all on CPUs {sorted(ours_cpus)}" if shared else
             f"process and the daemon on CPUs {sorted(ours_cpus)}, the servers on {sorted(servers_cpus)}")
    print(f"{len(files)} photos of {args.size} ({mp:.0f} MP), {os.cpu_count()} cores ({where}), "
          f"load {os.getloadavg()[0]:.2f}, DynamoDB on {dynamodb[0]}")
    # This script is a client like the servers: it stays off the cores being measured.
    os.sched_setaffinity(0, servers_cpus)
    # Rounds alternate process and serve (A B A B ...), so drift in the machine's speed hits
    # both alike; each line of the table is the median of its rounds.
    services = Services(args.s3s, dynamodb, work, env, servers_cpus)
    processes, drains = [], {c: [] for c in args.concurrency}
    try:
        s3, _ = clients(services)
        prepare(s3, None, files)
        for round_no in range(1, args.rounds + 1):
            processes.append(run_process(args.binary, files, work, ours_cpus))
            print(f"round {round_no}: process {processes[-1][0]:.1f} s", flush=True)
            for concurrency in args.concurrency:
                drains[concurrency].append(drain(args.binary, services, files, work, concurrency, ours_cpus))
                print(f"round {round_no}: serve, concurrency {concurrency or 'default'} "
                      f"{drains[concurrency][-1][0]:.1f} s", flush=True)
    finally:
        services.stop()
    process_s, process_cpu = median_run(processes)
    process_rate = len(files) / process_s
    print(f"\n{'run (median of ' + str(args.rounds) + ' rounds)':<44}{'wall s':>8}{'photos/s':>10}{'done':>7}"
          f"{'failed':>7}{'peak MiB':>10}{'ours CPU s':>12}{'servers CPU s':>15}")
    print(f"{'ec2-service process (same files, no network)':<44}{process_s:>8.1f}{process_rate:>10.1f}"
          f"{len(files):>7}{0:>7}{'':>10}{process_cpu:>12.1f}{'':>15}")
    rows = [(c, *median_run(drains[c])) for c in args.concurrency]
    for concurrency, elapsed, done, failed, rss, ours, servers, _ in rows:
        label = f"serve, concurrency {concurrency or f'default ({JOBS_PER_CORE * cores})'}"
        print(f"{label:<44}{elapsed:>8.1f}{len(files) / elapsed:>10.1f}{done:>7}{failed:>7}{rss:>10.0f}"
              f"{ours:>12.1f}{servers:>15.1f}")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")
    _, elapsed, _, _, _, ours, servers, each = rows[0]
    print("the servers' CPU s during that drain: " + ", ".join(f"{n} {c:.1f}" for n, c in each.items()))
    # How busy the daemon kept its cores, what the servers took (of the daemon's cores
    # too with --shared-cores), and the drain rate per CPU second the daemon got against
    # process's: together they say where a gap comes from.
    servers_share = f"{servers / (elapsed * len(servers_cpus)):.0%} of " + (
        "the same cores" if shared else f"their {len(servers_cpus)}")
    print(f"during the drain: the daemon kept {ours / (elapsed * cores):.0%} of its {cores} cores busy, "
          f"the servers {servers_share}; photos per CPU second, serve/process: {process_cpu / ours:.2f}")
    # Each round's process and serve ran back to back, at the same speed of the machine:
    # the ratio is taken per round, and the median of the rounds' ratios printed.
    ratios = [p[0] / d[0] for p, d in zip(processes, drains[args.concurrency[0]])]
    print("drain/process per round: " + " ".join(f"{r:.2f}" for r in ratios))
    print(f"drain/process: {sorted(ratios)[len(ratios) // 2]:.2f}")

if __name__ == "__main__":
    main()
