using System.Runtime.CompilerServices;

// Crash-simulation hooks (VhdxLog.AfterEntryWritten, DifferencingVhdxFile.SimulateCrash) are internal and used by tests.
[assembly: InternalsVisibleTo("BackupFuse.Vhdx.Tests")]
