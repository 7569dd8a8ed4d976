"""Pure protocol rules: functions of values, no I/O, no clock, no asyncio."""
