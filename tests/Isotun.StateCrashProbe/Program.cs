using System.Net;
using Isotun.State;

// Usage: Isotun.StateCrashProbe STATE-FILE TAG
// Saves leases of tenant "crash" for users TAG-0, TAG-1, ... (address 10.x.y.z from the number) and prints each
// user name on stdout once SaveLease has returned, that is once the lease is committed. Runs until killed.
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: Isotun.StateCrashProbe STATE-FILE TAG");
    return 2;
}
using var store = new SqliteStateStore(args[0]);
var stdout = Console.Out;
for (int i = 0; ; i++)
{
    var user = $"{args[1]}-{i}";
    store.SaveLease("crash", user, Address(i), null);
    stdout.WriteLine(user);
    stdout.Flush();
}

static IPAddress Address(int i) => new([10, (byte)(i >> 16), (byte)(i >> 8), (byte)i]);
