"""The PHP reader of docs/flags.md, run by php-cli against a real redis-server: it must give
every context the answer the Python evaluator gives, before and after the kill switch."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from backend.flags.evaluate import evaluate
from backend.flags.model import Context
from backend.flags.service import FlagService

DOC = Path(__file__).resolve().parents[1] / "docs" / "flags.md"
PREFIX = "php-test"

# a test-only Redis client for php-cli without the phpredis extension: the reader only
# needs get() and hGetAll(), as phpredis' \Redis and Laravel's connection provide them
RESP_CLIENT = r"""
final class TinyRedis
{
    private $sock;
    public function __construct(string $host, int $port)
    {
        $this->sock = stream_socket_client("tcp://{$host}:{$port}", $errno, $err, 5);
        if (!$this->sock) { throw new RuntimeException($err); }
    }
    private function call(string ...$args): mixed
    {
        $out = '*' . count($args) . "\r\n";
        foreach ($args as $a) { $out .= '$' . strlen($a) . "\r\n{$a}\r\n"; }
        fwrite($this->sock, $out);
        return $this->reply();
    }
    private function reply(): mixed
    {
        $line = rtrim(fgets($this->sock), "\r\n");
        $body = substr($line, 1);
        switch ($line[0]) {
            case '+': return $body;
            case ':': return (int) $body;
            case '-': throw new RuntimeException($body);
            case '$':
                if ((int) $body < 0) { return false; }
                $data = '';
                while (strlen($data) < (int) $body + 2) { $data .= fread($this->sock, (int) $body + 2 - strlen($data)); }
                return substr($data, 0, -2);
            case '*':
                $items = [];
                for ($i = 0; $i < (int) $body; $i++) { $items[] = $this->reply(); }
                return $items;
        }
        throw new RuntimeException("bad reply {$line}");
    }
    public function get(string $key): mixed { return $this->call('GET', $key); }
    public function hGetAll(string $key): array
    {
        $flat = $this->call('HGETALL', $key);
        $out = [];
        for ($i = 0; $i < count($flat); $i += 2) { $out[$flat[$i]] = $flat[$i + 1]; }
        return $out;
    }
}
"""

HARNESS = r"""
[$host, $port, $prefix, $file] = array_slice($argv, 1);
$flags = new PortalOpsFlags(new TinyRedis($host, (int) $port), $prefix);
$flags->refresh();
$answers = [];
foreach (json_decode(file_get_contents($file), true) as [$name, $company, $user, $session]) {
    $answers[] = $flags->isEnabled($name, $company, $user, $session);
}
echo json_encode($answers);
"""


def php_reader() -> str:
    """The ```php block of docs/flags.md, as written there."""
    blocks = re.findall(r"```php\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, "docs/flags.md must hold exactly one PHP block: the reader"
    return blocks[0]


@pytest.fixture
def php() -> str:
    found = shutil.which("php")
    if found is None:
        pytest.skip("php-cli is not installed (apt-get install php-cli)")
    check = subprocess.run([found, "-r", "echo hash('murmur3a', 'AB12A:122');"],
                           capture_output=True, text=True)  # fmt: skip
    assert check.stdout == "3f4e7e32"  # the value docs/flags.md gives
    return found


def test_php_reader_agrees_with_python_on_real_redis(php, fresh_redis, tmp_path: Path) -> None:
    script = tmp_path / "reader.php"
    script.write_text(php_reader() + RESP_CLIENT + HARNESS)
    lint = subprocess.run([php, "-l", str(script)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    with FlagService(tmp_path / "journal.db", fresh_redis.url, PREFIX) as service:
        service.create("by-company")
        service.enable("by-company", 50)
        service.create("by-user", stickiness="user", group="shared-group")
        service.enable("by-user", 30)
        service.create("by-default", stickiness="default")
        service.enable("by-default", 40)
        service.create("everyone")
        service.enable("everyone", 100)
        service.create("nobody")
        service.enable("nobody", 0)
        service.create("still-off")
        service.create("targeted")
        service.enable("targeted", 20)
        service.override("targeted", "company", "C0003", True)
        service.override("targeted", "user", "21", False)
        names = [f.name for f in service.store.all()] + ["unknown-flag"]
        contexts = [
            (f"C{i:04d}" if i % 7 else None, str(i * 7) if i % 5 else None, f"s{i}")
            for i in range(200)
        ]
        cases = [[n, c, u, s] for n in names for c, u, s in contexts]
        (tmp_path / "cases.json").write_text(json.dumps(cases))

        def php_answers() -> list[bool]:
            out = subprocess.run(
                [php, str(script), fresh_redis.host, str(fresh_redis.port), PREFIX,
                 str(tmp_path / "cases.json")],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert out.returncode == 0, out.stdout + out.stderr
            return json.loads(out.stdout)

        def python_answers(emergency: bool) -> list[bool]:
            flags = {f.name: f for f in service.store.all()}
            return [
                evaluate(flags.get(n), Context(company=c, user=u, session=s), emergency).value
                for n, c, u, s in cases
            ]

        expected = python_answers(False)
        assert 0 < sum(expected) < len(expected)  # the vectors split both ways
        assert php_answers() == expected
        service.emergency_disable("test the kill switch")
        assert php_answers() == python_answers(True) == [False] * len(cases)
