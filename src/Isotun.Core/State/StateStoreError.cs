namespace Isotun.State;

/// <summary>Why the state file could not be opened.</summary>
public enum StateStoreError
{
    /// <summary>The file is not an SQLite database.</summary>
    NotADatabase,

    /// <summary>The file is an SQLite database that fails its integrity check.</summary>
    Corrupt,

    /// <summary>The file was written by a newer Isotun (its schema version is higher than this build knows).</summary>
    NewerSchema,

    /// <summary>The file is an SQLite database without Isotun's tables (another program's file).</summary>
    ForeignSchema,

    /// <summary>The file or its directory cannot be made, read or written (permissions, a read-only file system, I/O errors).</summary>
    Inaccessible,

    /// <summary>Another process holds the file locked beyond the busy timeout.</summary>
    Locked,
}
