"""Operations: backup and restore of the embedded database, and other operator tools."""
