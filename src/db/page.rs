//! Keyset pagination: fetch `limit + 1` rows, keep `limit`, and the last kept
//! row's key is the next page's cursor (none when nothing was left over).

pub fn split<T, C>(mut rows: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> C) -> (Vec<T>, Option<C>) {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        let next = rows.last().map(&cursor_of);
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_full_page_has_a_cursor_and_the_last_page_none() {
        assert_eq!(super::split(vec![1, 2, 3], 2, |x| *x), (vec![1, 2], Some(2)));
        assert_eq!(super::split(vec![1, 2], 2, |x| *x), (vec![1, 2], None));
    }
}
