/* test_vboxmanage.c -- parsing VBoxManage's output: list vms, showvminfo, list
 * hostonlyifs, and the line of a failure worth quoting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "zos/vboxmanage.h"
#include "zos/zos.h"

static void test_parse_list(void **state)
{
    (void)state;
    const char *text = "\"My Node\" {0b6a2c7e-1111-4a4a-9c9c-000000000001}\n"
                       "\"ZOS-Test\" {0b6a2c7e-1111-4a4a-9c9c-000000000002}\r\n"
                       "garbage line\n"
                       "\"<inaccessible>\" {0b6a2c7e-1111-4a4a-9c9c-000000000003}\n"
                       "\"say \"hi\" {x}\" {0b6a2c7e-1111-4a4a-9c9c-000000000004}";
    struct zos_vboxmanage_list l = {0};
    assert_int_equal(zos_vboxmanage_parse_list(text, &l), ZOS_OK);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.vms[0].name, "My Node");
    assert_string_equal(l.vms[0].uuid, "0b6a2c7e-1111-4a4a-9c9c-000000000001");
    assert_string_equal(l.vms[1].name, "ZOS-Test"); /* the original lower-cased it */
    assert_string_equal(l.vms[1].uuid, "0b6a2c7e-1111-4a4a-9c9c-000000000002");
    assert_string_equal(l.vms[2].name, "<inaccessible>");
    assert_string_equal(l.vms[3].name, "say \"hi\" {x}");
    assert_non_null(zos_vboxmanage_list_find(&l, "ZOS-Test"));
    assert_null(zos_vboxmanage_list_find(&l, "zos-test"));
    zos_vboxmanage_list_clear(&l);
    assert_int_equal(zos_vboxmanage_parse_list("", &l), ZOS_OK);
    assert_int_equal(l.n, 0);
}

static void test_parse_info(void **state)
{
    (void)state;
    const char *text =
        "Name:                        zos\n"
        "State:                       powered off (since 2024-05-01T10:00:00.000000000)\n"
        "NIC 1:                       MAC: 080027, Attachment: NAT, Cable connected: on\n"
        "NIC 1 Settings:  MTU: 0, Socket (send: 64, receive: 64)\n"
        "NIC 1 Rule(0):   name = redis, protocol = tcp, host ip = , host port = 4444, guest ip "
        "= , guest port = 6379\n"
        "NIC 1 Rule(1):   name = ssh, protocol = udp, host ip = 127.0.0.1, host port = 2222, "
        "guest ip = 10.0.2.15, guest port = 22\n";
    struct zos_vboxmanage_info i = {0};
    assert_int_equal(zos_vboxmanage_parse_info(text, &i), ZOS_OK);
    assert_string_equal(i.state, "powered off");
    assert_false(zos_vboxmanage_info_running(&i));
    assert_int_equal(i.nfwd, 2);
    assert_int_equal(i.fwd[0].nic, 1);
    assert_string_equal(i.fwd[0].name, "redis");
    assert_string_equal(i.fwd[0].proto, "tcp");
    assert_string_equal(i.fwd[0].host_ip, "");
    assert_int_equal(i.fwd[0].host_port, 4444);
    assert_int_equal(i.fwd[0].guest_port, 6379);
    assert_string_equal(i.fwd[1].name, "ssh");
    assert_string_equal(i.fwd[1].proto, "udp");
    assert_string_equal(i.fwd[1].host_ip, "127.0.0.1");
    assert_int_equal(i.fwd[1].host_port, 2222);
    assert_string_equal(i.fwd[1].guest_ip, "10.0.2.15");
    assert_int_equal(i.fwd[1].guest_port, 22);
    zos_vboxmanage_info_clear(&i);
    assert_int_equal(zos_vboxmanage_parse_info("State:   running (since x)\n", &i), ZOS_OK);
    assert_true(zos_vboxmanage_info_running(&i));
    zos_vboxmanage_info_clear(&i);
}

static void test_info_states(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        const char *state;
        bool running, poweroff;
    } cases[] = {
        {"State:           running (since 2024-05-01T10:00:00.000000000)", "running", true, true},
        {"State:           paused (since x)", "paused", false, true},
        {"State:           stuck (since x)", "stuck", false, true},
        {"State:           powered off (since x)", "powered off", false, false},
        {"State:           saved (since x)", "saved", false, false},
        {"State:           aborted", "aborted", false, false},
    };
    for (size_t k = 0; k < ZOS_ARRAY_LEN(cases); k++) {
        struct zos_vboxmanage_info i = {0};
        assert_int_equal(zos_vboxmanage_parse_info(cases[k].line, &i), ZOS_OK);
        assert_string_equal(i.state, cases[k].state);
        assert_int_equal(zos_vboxmanage_info_running(&i), cases[k].running);
        assert_int_equal(zos_vboxmanage_info_needs_poweroff(&i), cases[k].poweroff);
        zos_vboxmanage_info_clear(&i);
    }
    /* No State: line at all (an inaccessible VM): nothing runs, nothing is held. */
    struct zos_vboxmanage_info i = {0};
    assert_int_equal(zos_vboxmanage_parse_info("Name: <inaccessible!>\n", &i), ZOS_OK);
    assert_string_equal(i.state, "");
    assert_false(zos_vboxmanage_info_needs_poweroff(&i));
    assert_int_equal(i.nfwd, 0);
    zos_vboxmanage_info_clear(&i);
}

static void test_hostonlyifs(void **state)
{
    (void)state;
    const char *text = "Name:            vboxnet1\n"
                       "GUID:            786f6276-656e-4174-8000-0a0027000001\n"
                       "IPAddress:       192.168.57.1\n"
                       "\n"
                       "Name:            vboxnet0\r\n"
                       "VBoxNetworkName: HostInterfaceNetworking-vboxnet0\n";
    assert_true(zos_vboxmanage_lists_iface(text, "vboxnet0"));
    assert_true(zos_vboxmanage_lists_iface(text, "vboxnet1"));
    assert_false(zos_vboxmanage_lists_iface(text, "vboxnet")); /* whole names only */
    assert_false(zos_vboxmanage_lists_iface(text, "vboxnet00"));
    assert_false(zos_vboxmanage_lists_iface("VBoxNetworkName: vboxnet0\n", "vboxnet0"));
    assert_false(zos_vboxmanage_lists_iface("", "vboxnet0"));
}

static void check_error_line(const char *err, const char *out, const char *want)
{
    char buf[128];
    zos_vboxmanage_error_line(err, out, buf, sizeof buf);
    assert_string_equal(buf, want);
}

static void test_error_line(void **state)
{
    (void)state;
    /* VirtualBox's error line, not the progress before it. */
    check_error_line("0%...10%...20%...\n"
                     "VBoxManage: error: VT-x is not available (VERR_VMX_NO_VMX)\n"
                     "VBoxManage: error: Details: code NS_ERROR_FAILURE\n",
                     "Waiting for VM to power on...\n",
                     "VBoxManage: error: VT-x is not available (VERR_VMX_NO_VMX)");
    /* No "error": the first line that is neither blank nor progress, trimmed. */
    check_error_line("0%...100%\n\n   qemu: could not open disk  \n", "",
                     "qemu: could not open disk");
    /* stderr has nothing: stdout is looked at. */
    check_error_line("", "Progress state: E_FAIL\nerror: medium is locked\n",
                     "error: medium is locked");
    check_error_line(NULL, "  something went wrong\n", "something went wrong");
    /* stderr's plain line wins over stdout's error line. */
    check_error_line("failed\n", "error: x\n", "failed");
    check_error_line("0%...\n", "\n", "no output");
    check_error_line(NULL, NULL, "no output");

    char small[8];
    zos_vboxmanage_error_line("a rather long line\n", NULL, small, sizeof small);
    assert_string_equal(small, "a rathe"); /* cut to fit, terminated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_list),  cmocka_unit_test(test_parse_info),
        cmocka_unit_test(test_info_states), cmocka_unit_test(test_hostonlyifs),
        cmocka_unit_test(test_error_line),
    };
    return cmocka_run_group_tests_name("vboxmanage", tests, NULL, NULL);
}
