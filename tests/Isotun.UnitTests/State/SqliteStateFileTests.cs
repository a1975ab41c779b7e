using System.Net;
using Isotun.State;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.State;

/// <summary>A state file that cannot be used is refused at open with the file, the problem and the way to recover.</summary>
public sealed class SqliteStateFileTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static StateStoreException Refused(string path, StateStoreError error)
    {
        var e = Assert.Throws<StateStoreException>(() => new SqliteStateStore(path).Dispose());
        Assert.Equal(error, e.Error);
        Assert.Equal(path, e.Path);
        Assert.StartsWith($"state file {path}: ", e.Message);
        return e;
    }

    private static void SaysToMoveItAside(StateStoreException e)
    {
        Assert.Contains("move the file aside together with its -wal and -shm files", e.Message);
        Assert.Contains("cookie key file", e.Message);
    }

    /// <summary>A new state file is its owner's alone, and so are the directories made for it.</summary>
    [Fact]
    public void A_new_state_file_and_the_directories_made_for_it_are_the_owners_alone()
    {
        var path = _temp.File(Path.Combine("new", "deeper", "state.db"));
        new SqliteStateStore(path).Dispose();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        foreach (var dir in new[] { _temp.File("new"), _temp.File(Path.Combine("new", "deeper")) })
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dir));
    }

    [Fact]
    public void A_file_that_is_not_a_database_is_refused()
    {
        var path = _temp.File("isotun.db");
        File.WriteAllText(path, string.Concat(Enumerable.Repeat("tenants:\n  - name: acme\n", 100)));
        var e = Refused(path, StateStoreError.NotADatabase);
        Assert.Contains("is not an SQLite database", e.Message);
        SaysToMoveItAside(e);
    }

    [Fact]
    public void A_damaged_copy_of_a_good_file_is_refused_and_the_original_still_opens()
    {
        var good = _temp.File("isotun.db");
        using (var store = new SqliteStateStore(good))
            for (int i = 0; i < 300; i++) store.SaveLease("acme", $"user{i}", IPAddress.Parse($"10.10.{i / 256}.{i % 256}"), null);
        var bytes = File.ReadAllBytes(good);
        Assert.True(bytes.Length > 4 * 4096, "the file should span several pages");
        // Garbage over every page but the first: the header still says SQLite, the tables' pages do not.
        new Random(8).NextBytes(bytes.AsSpan(4096));
        var damaged = _temp.File("damaged.db");
        File.WriteAllBytes(damaged, bytes);

        var e = Refused(damaged, StateStoreError.Corrupt);
        Assert.Contains("is damaged", e.Message);
        SaysToMoveItAside(e);
        using var original = new SqliteStateStore(good);
        Assert.Equal(300, original.Leases("acme").Count);
    }

    [Fact]
    public void A_file_from_a_newer_isotun_is_refused()
    {
        var path = _temp.File("isotun.db");
        new SqliteStateStore(path).Dispose();
        using (var db = SqliteStateStoreTests.Connect(path)) SqliteStateStoreTests.Exec(db, "PRAGMA user_version = 99");
        var e = Refused(path, StateStoreError.NewerSchema);
        Assert.Contains($"has schema version 99 and this Isotun knows up to {SqliteStateStore.SchemaVersion}", e.Message);
        SaysToMoveItAside(e);
    }

    /// <summary>
    /// A file an earlier Isotun wrote (schema 1, without the trust table) opens, keeps its leases, and gets the table;
    /// the version stays 1, so that earlier Isotun still opens it.
    /// </summary>
    [Fact]
    public void A_file_from_before_the_trust_table_opens_and_gets_it()
    {
        var path = _temp.File("isotun.db");
        using (var db = SqliteStateStoreTests.Connect(path))
            SqliteStateStoreTests.Exec(db, """
                CREATE TABLE revoked (session TEXT PRIMARY KEY, until INTEGER NOT NULL);
                CREATE TABLE leases (tenant TEXT NOT NULL, user TEXT NOT NULL, address TEXT, address6 TEXT, updated INTEGER NOT NULL, PRIMARY KEY (tenant, user));
                INSERT INTO leases VALUES ('acme', 'alice', '10.10.0.7', NULL, 1800000000);
                PRAGMA user_version = 1;
                """);
        using (var store = new SqliteStateStore(path))
        {
            Assert.Equal("10.10.0.7", store.GetLease("acme", "alice")!.Address!.ToString());
            Assert.Null(store.GetTrust("acme"));
            store.SaveTrust("acme", new TrustRecord(["AB"], ["acme"], DateTimeOffset.FromUnixTimeSeconds(1800000000)));
        }
        using (var store = new SqliteStateStore(path)) Assert.Equal(["AB"], store.GetTrust("acme")!.Cas);
        using var check = SqliteStateStoreTests.Connect(path);
        using var cmd = check.CreateCommand();
        cmd.CommandText = "PRAGMA user_version";
        Assert.Equal(1L, (long)cmd.ExecuteScalar()!);
    }

    [Fact]
    public void Another_programs_database_is_refused()
    {
        var path = _temp.File("isotun.db");
        using (var db = SqliteStateStoreTests.Connect(path)) SqliteStateStoreTests.Exec(db, "CREATE TABLE leases (id INTEGER PRIMARY KEY, name TEXT)");
        var e = Refused(path, StateStoreError.ForeignSchema);
        Assert.Contains("is an SQLite database without Isotun's tables (no such column: tenant)", e.Message);
        SaysToMoveItAside(e);
    }

    [Fact]
    public void A_directory_in_place_of_the_file_is_refused()
    {
        var path = _temp.File("isotun.db");
        Directory.CreateDirectory(path);
        var e = Refused(path, StateStoreError.Inaccessible);
        Assert.Contains("is a directory", e.Message);
        Assert.Contains("can read and write the file and its directory", e.Message);
    }

    [Fact]
    public void A_file_in_place_of_its_directory_is_refused()
    {
        File.WriteAllText(_temp.File("var"), "");
        var path = _temp.File("var/isotun.db");
        var e = Refused(path, StateStoreError.Inaccessible);
        Assert.Contains("cannot be made or opened", e.Message);
    }

    [Fact]
    public void A_read_only_directory_is_refused()
    {
        var dir = _temp.File("ro");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, "isotun.db");
        new SqliteStateStore(path).Dispose();
        // Root writes through directory modes; an immutable directory (chattr +i) stops root too.
        bool root = Environment.IsPrivilegedProcess;
        if (root) Assert.Equal(0, Chattr("+i", dir));
        else File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        try
        {
            // The file itself is writable, but SQLite cannot make its -wal and -shm files beside it.
            var e = Refused(path, StateStoreError.Inaccessible);
            Assert.Contains("can read and write the file and its directory", e.Message);
            Assert.Equal(StateStoreError.Inaccessible, Assert.Throws<StateStoreException>(() => new SqliteStateStore(Path.Combine(dir, "new.db"))).Error);
        }
        finally
        {
            if (root) Chattr("-i", dir);
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    private static int Chattr(string flag, string path)
    {
        using var p = System.Diagnostics.Process.Start("chattr", [flag, path])!;
        p.WaitForExit();
        return p.ExitCode;
    }

    [Fact]
    public async Task A_file_locked_by_another_process_past_the_busy_timeout_is_refused()
    {
        var path = _temp.File("isotun.db");
        new SqliteStateStore(path).Dispose();
        using var other = SqliteStateStoreTests.Connect(path);
        SqliteStateStoreTests.Exec(other, "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE");
        var e = await Task.Run(() => Refused(path, StateStoreError.Locked));
        Assert.Contains("stayed locked by another process", e.Message);
        SqliteStateStoreTests.Exec(other, "COMMIT");
    }
}
