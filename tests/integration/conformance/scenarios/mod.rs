//! The scenarios, one file per section. Each takes a [`Fixture`](super::Fixture), makes its
//! own fresh collection with [`fresh`](super::fresh), and asserts on results. Add a scenario to
//! its section's file and to `all_scenarios!` below.

mod bad_input;
mod capabilities;
mod concurrency;
mod consistency;
mod crud;
mod helpers;
mod identifiers;
mod operators;
mod schema_growth;
mod shapes;
mod sorting;
mod sql;
mod types;

pub use bad_input::*;
pub use capabilities::*;
pub use concurrency::*;
pub use consistency::*;
pub use crud::*;
pub use identifiers::*;
pub use operators::*;
pub use schema_growth::*;
pub use shapes::*;
pub use sorting::*;
pub use sql::*;
pub use types::*;

/// Lists every scenario once; backends expand it through `conformance_suite!`.
#[macro_export]
macro_rules! all_scenarios {
    ($suite:path; $fixture:expr) => {
        $suite!($fixture;
            create_then_read_returns_the_same_fields,
            create_generates_an_id_when_none_is_given,
            create_with_duplicate_id_is_already_exists_and_changes_nothing,
            read_missing_id_is_none,
            update_replaces_fields,
            update_missing_id_is_false,
            delete_removes_and_reports,
            filter_eq_on_integers,
            create_uses_the_key_field_as_id,
            record_id_disagreeing_with_key_field_is_rejected,
            exists_tracks_create_and_delete,
            delete_then_recreate_the_same_id,
            update_replaces_the_whole_record,
            update_can_add_a_new_field,
            upsert_inserts_when_missing,
            upsert_replaces_when_present,
            batch_create_returns_ids_in_order,
            batch_read_gives_none_for_missing_ids_in_order,
            batch_update_reports_a_flag_per_record,
            batch_delete_reports_a_flag_per_id,
            batch_create_with_duplicate_ids_creates_nothing,
            batch_create_colliding_with_an_existing_id_creates_nothing,
            count_with_and_without_query,
            clear_returns_the_count_and_empties,
            large_batch_is_complete_and_queryable,
            filter_eq_null_matches_nothing,
            filter_ne_excludes_nulls,
            filter_range_operators,
            filter_in_with_null_matches_only_non_null_values,
            filter_not_in_with_null_in_list_matches_nothing,
            filter_exists_and_not_exists_cover_null_and_missing,
            filter_operators_parsed_from_seed_strings,
            filter_in_and_not_in_on_strings,
            filter_string_comparisons,
            empty_string_is_not_null,
            like_percent_and_underscore,
            like_escaped_wildcards_match_literally,
            like_is_case_sensitive_and_counts_characters,
            regex_is_unanchored_and_case_sensitive,
            filters_combine_with_and_or_not,
            numeric_filters_mix_integers_and_floats,
            filter_on_boolean_and_datetime_columns,
            filter_on_the_id_column,
            sort_multi_key_with_default_null_placement,
            sort_nulls_placement_can_be_overridden,
            sort_on_floats_and_strings,
            limit_and_offset_page_through_sorted_results,
            offset_beyond_the_end_and_limit_zero_are_empty,
            limit_without_sort_returns_that_many_distinct_rows,
            projection_returns_only_the_requested_fields,
            projection_with_filter_and_sort_on_other_fields,
            every_field_type_round_trips,
            typed_nulls_round_trip_and_fix_column_types,
            integer_and_float_extremes_round_trip,
            datetimes_round_trip_with_microseconds,
            json_values_round_trip,
            binary_values_round_trip,
            long_text_round_trips,
            values_are_converted_to_the_column_type,
            wrong_value_type_is_a_type_error_and_changes_nothing,
            special_characters_in_values_round_trip,
            special_characters_in_ids,
            ids_are_exact_case_sensitive_strings,
            field_names_needing_quotes,
            sql_select_where_order_by_matches_record_api,
            sql_aggregates_follow_null_semantics,
            sql_group_by,
            sql_insert_is_visible_to_the_record_api,
            sql_insert_of_a_duplicate_key_inserts_nothing,
            sql_delete_is_visible_to_the_record_api,
            sql_update_is_visible_to_the_record_api,
            sql_update_with_a_bad_value_changes_nothing,
            sql_null_semantics_match_the_record_api,
            sql_sees_records_created_through_the_api_immediately,
            unknown_operator_string_is_rejected,
            filter_on_an_unknown_field_is_a_query_error,
            filter_value_of_the_wrong_type_is_a_type_error,
            sort_or_project_on_an_unknown_field_is_a_query_error,
            malformed_filters_are_rejected,
            a_new_field_adds_a_nullable_column_visible_in_sql,
            new_fields_take_their_value_types,
            concurrent_creates_from_many_tasks,
            concurrent_creates_of_the_same_id_have_one_winner,
            concurrent_upserts_of_the_same_id_leave_one_record,
            read_and_search_return_the_same_record,
            untyped_null_does_not_fix_a_column_type,
            datetimes_are_stored_with_microsecond_precision,
            sql_update_of_the_key_moves_the_record,
            the_collection_is_listed_under_its_attached_name,
            an_integer_key_sorts_and_filters_as_numbers,
            a_collection_without_a_key_still_gives_ids,
            declared_capabilities_match_behaviour,
        );
    };
}
