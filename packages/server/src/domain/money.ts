/** Money limits of the API: amounts are integer fen (分). Pure: no I/O. */

/** Java and C# SDKs read money as 32-bit ints (§5.5). */
export const MAX_AMOUNT = 2_147_483_647;
