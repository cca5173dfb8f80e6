"""zos configure / remove / forgetvm / setdefault / show*: the config file, help, usage errors."""
import os
import stat

import pytest

from conftest import NODE_SECRET

FIRST_TIME = (
    "To create new machine in VirtualBox use\n"
    "  zos init --name=<zosmachine> [--disksize=<disksize>] [--memory=<memorysize>] "
    "[--redisport=<redisport>]\n"
    "\n"
    "To configure it to use a specific zosmachine\n"
    "  zos configure --name=<zosmachine> --address=<address> [--port=<port>] "
    "[--sshkey=<sshkeyname>] [--secret=<secret>]\n")

ORIGINAL_FILE = ('[app]\ndebug=false\ndefaultzos=local\n\n'
                 '[local]\naddress="127.0.0.1"\nport=%d\nisvbox=true\n')


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# ---------------------------------------------------------------- first run

@pytest.mark.parametrize("args", [["ping"], ["container", "list"], ["showactive"],
                                  ["exec", "ls"], ["showactiveconfig"]])
def test_first_run_prints_the_original_message_and_exits_5(bare, args):
    r = bare.run(*args)
    assert r.rc == 5, r
    assert r.err == FIRST_TIME
    assert r.out == ""
    # the file was created on the first run, as the original did, mode 0600
    assert bare.read_config() == "[app]\ndebug = false\n"
    assert mode(bare.config) == 0o600


def test_first_run_creates_missing_directories(bare):
    bare.env["ZOS_CONFIG"] = os.path.join(bare.tmp, "deep", "er", "zos.toml")
    bare.run("ping")
    assert os.path.exists(bare.env["ZOS_CONFIG"])
    assert mode(os.path.dirname(bare.env["ZOS_CONFIG"])) == 0o700


def test_default_config_path_is_home_dot_config(bare):
    del bare.env["ZOS_CONFIG"]
    bare.ok("configure", "--name", "n1", "--address", "10.1.2.3")
    path = os.path.join(bare.home, ".config", "zos.toml")
    assert "[n1]\naddress = 10.1.2.3\nport = 6379\n" in open(path).read()
    assert mode(path) == 0o600


def test_help_and_version_need_no_config(bare):
    r = bare.ok("--version")
    assert r.out.startswith("zos ")
    r = bare.ok("--help")
    assert "usage: zos" in r.out and "container" in r.out and "configure" in r.out
    assert not os.path.exists(bare.config)


@pytest.mark.parametrize("cmd", ["init", "configure", "remove", "forgetvm", "setdefault",
                                 "showconfig", "showactive", "showactiveconfig", "ping", "cmd",
                                 "exec", "container"])
def test_every_command_has_help(bare, cmd):
    r = bare.ok(cmd, "--help")
    assert r.out.startswith("usage: zos %s" % cmd), r
    assert bare.ok("help", cmd).out == r.out


@pytest.mark.parametrize("sub", ["new", "list", "info", "inspect", "delete", "zosexec", "invoke",
                                 "zerotierinfo", "zerotierlist", "sshenable", "sshinfo", "shell",
                                 "exec", "upload", "download", "mount"])
def test_every_container_sub_command_has_help(zos, sub):
    r = zos.ok("container", sub, "--help")
    assert r.out.startswith("usage: zos container"), r
    assert sub in r.out.splitlines()[0]
    assert sub in zos.ok("help", "container", sub).out


def test_unknown_command_and_no_command(bare):
    r = bare.run("frobnicate")
    assert r.rc == 6 and "unknown command 'frobnicate'" in r.err
    r = bare.run()
    assert r.rc == 6 and "usage: zos" in r.err
    r = bare.run("help", "frobnicate")
    assert r.rc == 6
    r = bare.run("--bogus", "ping")
    assert r.rc == 15 and "unknown option '--bogus'" in r.err
    r = bare.run("--timeout", "0", "ping")
    assert r.rc == 15 and "--timeout" in r.err


# ---------------------------------------------------------------- configure

def test_configure_writes_the_node_and_makes_the_first_one_default(bare):
    bare.ok("configure", "--name=local", "--address=192.168.122.147", "--port=6379")
    assert bare.read_config() == ("[app]\ndebug = false\ndefaultzos = local\n\n"
                                  "[local]\naddress = 192.168.122.147\nport = 6379\n")
    assert mode(bare.config) == 0o600
    # a second node is not made default unless asked
    bare.ok("configure", "--name", "other", "--address", "10.0.0.2", "--no-tls")
    assert bare.ok("showactive").out == "local\n"
    bare.ok("configure", "--name", "other", "--setdefault")
    assert bare.ok("showactive").out == "other\n"
    text = bare.read_config()
    assert "[other]\naddress = 10.0.0.2\nport = 6379\ntls = false\n" in text


def test_configure_keeps_what_is_not_given(bare):
    bare.ok("configure", "--name", "n", "--address", "10.9.9.9", "--port", "4444",
            "--secret", "abc", "--sshkey", "~/.ssh/k", "--no-tls")
    bare.ok("configure", "--name", "n", "--port", "5555")
    r = bare.ok("showactiveconfig")
    assert r.out == ("[n]\naddress = 10.9.9.9\nport = 5555\ntls = no\nisvbox = false\n"
                     "secret = ********\nsshkey = %s/.ssh/k\n" % bare.home)
    bare.ok("configure", "--name", "n", "--tls", "--secret=")
    r = bare.ok("showactiveconfig")
    assert "tls = yes" in r.out and "secret" not in r.out


@pytest.mark.parametrize("args,code,message", [
    (["--address", "1.2.3.4"], 15, "--name is required"),
    (["--name", "x", "--port", "70000"], 15, "--port: expected a port number from 1 to 65535, got '70000'"),
    (["--name", "x", "--port", "0"], 15, "got '0'"),
    (["--name", "x", "--port", "44a"], 15, "got '44a'"),
    (["--name", "x", "--port", "-5"], 15, "got '-5'"),
    (["--name", "x", "--address", ""], 15, "--address: must not be empty"),
    (["--name", "x", "--tls", "--no-tls"], 15, "not both"),
    (["--name", "my node"], 22, "--name"),
    (["--name", "a/b"], 22, "--name"),
    (["--name", "app"], 22, "reserved"),
    (["--name", "Proxy"], 22, "reserved"),
    (["--name", "x", "--colour", "red"], 15, "unknown option '--colour'"),
    (["--name"], 15, "option '--name' needs a value"),
    (["--name", "x", "extra"], 15, "unexpected argument 'extra'"),
    (["--name", "x", "--setdefault=yes"], 15, "takes no value"),
])
def test_configure_rejects_malformed_arguments(bare, args, code, message):
    bare.ok("showconfig")  # creates the file
    before = bare.read_config()
    r = bare.run("configure", *args)
    assert r.rc == code, r
    assert message in r.err, r
    assert r.err.startswith("zos")
    assert bare.read_config() == before


def test_setdefault(zos):
    zos.ok("setdefault", "secure")
    assert zos.ok("showactive").out == "secure\n"
    assert "defaultzos = secure" in zos.read_config()
    r = zos.run("setdefault", "ghost")
    assert r.rc == 17 and "no node named 'ghost'" in r.err
    r = zos.run("setdefault")
    assert r.rc == 15


def test_remove_and_forgetvm(zos):
    zos.ok("forgetvm", "--name", "secure")
    assert "[secure]" not in zos.read_config()
    zos.ok("remove", "--name=plain")
    assert zos.read_config() == "[app]\ndebug = false\n"
    for cmd in ("remove", "forgetvm"):
        r = zos.run(cmd, "--name", "plain")
        assert r.rc == 17 and "no node named 'plain'" in r.err
        r = zos.run(cmd)
        assert r.rc == 15 and "--name is required" in r.err
    # no node left: the node commands say so the friendly way
    assert zos.run("ping").rc == 5


def test_remove_of_a_virtualbox_node_needs_virtualbox(zos):
    zos.write_config("[app]\ndefaultzos = vm\n\n[vm]\naddress = 127.0.0.1\nport = 4444\n"
                     "isvbox = true\n")
    r = zos.run("remove", "--name", "vm", env={"PATH": "/usr/bin:/bin"})
    assert r.rc == 4, r
    assert "VirtualBox is not installed" in r.err and "forgetvm" in r.err
    assert "[vm]" in zos.read_config()
    zos.ok("forgetvm", "--name", "vm")
    assert "[vm]" not in zos.read_config()


def test_showconfig_masks_secrets(zos):
    zos.write_config(zos.read_config() + "\n[proxy]\nrequirepass=hunter2  \n\n[n3]\n"
                     "address = 10.0.0.3\npassword: pw-xyz\n; secret = not-a-key\n")
    r = zos.ok("showconfig")
    assert NODE_SECRET not in r.out and "hunter2" not in r.out and "pw-xyz" not in r.out
    assert "secret = ********" in r.out
    assert "requirepass=********" in r.out
    assert "password: ********" in r.out
    assert "; secret = not-a-key" in r.out  # a comment is not a key
    assert "address = 10.0.0.3" in r.out
    r = zos.ok("--node", "secure", "showactiveconfig")
    assert NODE_SECRET not in r.out and "secret = ********" in r.out
    assert r.out.startswith("[secure]\naddress = 127.0.0.1\n")


def test_show_commands_honour_node_option(zos):
    assert zos.ok("--node", "secure", "showactive").out == "secure\n"
    r = zos.run("--node", "ghost", "showactive")
    assert r.rc == 17


def test_a_file_written_by_the_original_tool(bare, procs):
    """The original wrote parsecfg files: key=value, quoted strings, isvbox."""
    from zostest import start_sim
    _, port = start_sim(procs, tls=True)  # a node made by `zos init` serves TLS
    bare.write_config(ORIGINAL_FILE % port)
    assert bare.ok("showactive").out == "local\n"
    r = bare.ok("showactiveconfig")
    assert r.out == "[local]\naddress = 127.0.0.1\nport = %d\ntls = yes\nisvbox = true\n" % port
    assert bare.ok("ping").out.startswith('"PONG Version: ')
    # a change rewrites it in our format, keeping every value
    bare.ok("configure", "--name", "second", "--address", "10.0.0.9")
    text = bare.read_config()
    assert text == ("[app]\ndebug = false\ndefaultzos = local\n\n[local]\naddress = 127.0.0.1\n"
                    "port = %d\nisvbox = true\n\n[second]\naddress = 10.0.0.9\nport = 6379\n" % port)
    assert mode(bare.config) == 0o600
    assert bare.ok("ping").out.startswith('"PONG Version: ')


def test_a_broken_config_file_is_reported_with_its_line(bare):
    bare.write_config("[app]\ndefaultzos = a\n\n[a]\naddress = 1.2.3.4\nport = 99999\n")
    r = bare.run("ping")
    assert r.rc == 14, r
    assert "zos.toml:6: port: must be 1..65535" in r.err
    r = bare.run("configure", "--name", "a", "--port", "1")
    assert r.rc == 14


def test_app_debug_shows_what_zos_does_but_never_secrets(zos):
    r = zos.ok("--node", "secure", "ping", env={"ZOS_DEBUG": "1"})
    assert "zos: debug: node 'secure'" in r.err
    assert NODE_SECRET not in r.err + r.out


@pytest.mark.parametrize("args", [
    ["configure", "--port", "1"], ["configure", "--name", "x", "--port", "x"], ["setdefault", "nope"],
    ["cmd"], ["exec"], ["container"], ["container", "new", "--ports", "1"], ["container", "x", "info"],
    ["frob"], ["ping", "extra"], ["--node", "ghost", "ping"], ["init"],
])
def test_errors_go_to_stderr_prefixed_zos(zos, args):
    r = zos.run(*args)
    assert r.rc != 0
    assert r.out == ""
    assert r.err.startswith("zos: "), r
